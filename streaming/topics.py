"""Online topic segmentation of a live transcript (TextTiling on sentence embeddings), and the
segmentation metrics Pk and WindowDiff.

`TopicTracker` is fed one final segment's embedding at a time and says when a topic has closed.

* Gap g lies between segments g-1 and g. Its **block similarity** is the cosine between the mean
  embedding of the `window` segments before it (never reaching back past the current topic's
  start) and the mean of the `window` segments after it.
* Its **depth** is TextTiling's: from g, climb left while the similarity rises and right while it
  rises; depth = (left peak - sim[g]) + (right peak - sim[g]). A deep valley between two coherent
  stretches is a topic change; a shallow dip is noise.
* A gap becomes a **boundary** when its depth reaches `threshold`, it is the lowest similarity
  within `delay` gaps on each side, and both the topic it closes and the one it opens can have at
  least `min_segments` segments. So a gap is decided once `window + delay` segments follow it:
  the decision delay, in segments. A topic that reaches `max_segments` is cut at its deepest gap.
* `finish()` (end of session) decides the gaps still pending with the context there is, and
  closes the last topic.

Defaults were tuned on held-out documents of `bench/topic_eval.py` (not the ones it reports).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class TopicOptions:
    window: int = 4             # segments on each side of a gap in the block similarity
    delay: int = 1              # further gaps to the right seen before a gap is decided
    threshold: float = 0.20     # minimum depth score of a boundary
    min_segments: int = 4       # shortest topic, in segments
    max_segments: int = 80      # a topic this long is cut at its deepest gap

    @property
    def decision_delay(self) -> int:
        """Segments that must follow a gap before it is decided."""
        return self.window + self.delay


@dataclass(frozen=True)
class ClosedTopic:
    index: int
    start: int                  # first segment (tracker numbering: 0 = first segment fed)
    end: int                    # last segment, inclusive


@dataclass
class TrackerState:
    embeddings: list[np.ndarray] = field(default_factory=list)   # every segment fed, in order
    topic_start: int = 0        # first segment of the open topic
    topics: int = 0             # topics closed so far


class TopicTracker:
    def __init__(self, options: TopicOptions = TopicOptions()):
        self.options = options
        self.state = TrackerState()

    @property
    def n_segments(self) -> int:
        return len(self.state.embeddings)

    def add(self, embedding: np.ndarray) -> list[ClosedTopic]:
        """One more segment (a unit vector); returns the topics this closes (usually none)."""
        self.state.embeddings.append(np.asarray(embedding, np.float32))
        return self._decide(final=False)

    def finish(self) -> list[ClosedTopic]:
        """End of the transcript: decide what is pending, close the last topic (if any)."""
        closed = self._decide(final=True)
        if self.state.topic_start < self.n_segments:
            closed.append(self._close(self.n_segments))
        return closed

    # ------------------------------------------------------------------ internals

    def similarities(self, final: bool = False) -> dict[int, float]:
        """Block similarity of the open topic's gaps that have a full right window (or, when
        `final`, at least `min_segments` segments to their right)."""
        o, e, start = self.options, self.state.embeddings, self.state.topic_start
        need = min(o.window, o.min_segments) if final else o.window
        sims = {}
        for g in range(start + 1, len(e) - need + 1):
            left = np.mean(e[max(start, g - o.window):g], axis=0)
            right = np.mean(e[g:g + o.window], axis=0)
            sims[g] = float(left @ right / (np.linalg.norm(left) * np.linalg.norm(right) + 1e-9))
        return sims

    @staticmethod
    def depth(sims: dict[int, float], g: int) -> float:
        left = right = sims[g]
        i = g - 1
        while i in sims and sims[i] >= left:
            left, i = sims[i], i - 1
        i = g + 1
        while i in sims and sims[i] >= right:
            right, i = sims[i], i + 1
        return (left - sims[g]) + (right - sims[g])

    def _decide(self, final: bool) -> list[ClosedTopic]:
        o, closed = self.options, []
        while True:
            sims = self.similarities(final)
            n, start = self.n_segments, self.state.topic_start
            boundary = None
            for g in sorted(sims):
                if g - start < o.min_segments or n - g < o.min_segments:
                    continue
                if not final and g + o.delay not in sims:
                    break                                   # not decidable yet
                near = [sims[i] for i in range(g - o.delay, g + o.delay + 1) if i in sims]
                if sims[g] <= min(near) and self.depth(sims, g) >= o.threshold:
                    boundary = g
                    break
            if boundary is None and n - start >= o.max_segments and sims:
                candidates = [g for g in sims if g - start >= o.min_segments]
                boundary = max(candidates, key=lambda g: self.depth(sims, g)) if candidates else None
            if boundary is None:
                return closed
            closed.append(self._close(boundary))

    def _close(self, end_exclusive: int) -> ClosedTopic:
        topic = ClosedTopic(self.state.topics, self.state.topic_start, end_exclusive - 1)
        self.state.topics += 1
        self.state.topic_start = end_exclusive
        return topic


def segment_offline(embeddings: np.ndarray, options: TopicOptions = TopicOptions()) -> list[int]:
    """Run the online tracker over a whole sequence; returns topic sizes (segments per topic)."""
    tracker, topics = TopicTracker(options), []
    for e in embeddings:
        topics += tracker.add(e)
    topics += tracker.finish()
    return [t.end - t.start + 1 for t in topics]


# ---------------------------------------------------------------------------------- metrics

def _labels(sizes: list[int]) -> np.ndarray:
    """Topic sizes [3, 2] -> the topic of each unit [0, 0, 0, 1, 1]."""
    return np.repeat(np.arange(len(sizes)), sizes)


def default_k(reference: list[int]) -> int:
    """Half the mean reference topic size (Beeferman et al.), at least 1."""
    return max(1, int(round(sum(reference) / len(reference) / 2)))


def pk(reference: list[int], hypothesis: list[int], k: int | None = None) -> float:
    """Pk: the share of unit pairs k apart on whose being in the same topic the two disagree."""
    ref, hyp, k, n = _windows(reference, hypothesis, k)
    return float(np.mean((ref[:n] == ref[k:]) != (hyp[:n] == hyp[k:]))) if n > 0 else 0.0


def window_diff(reference: list[int], hypothesis: list[int], k: int | None = None) -> float:
    """WindowDiff: the share of windows of k units in which the number of boundaries differs."""
    ref, hyp, k, n = _windows(reference, hypothesis, k)
    return float(np.mean((ref[k:] - ref[:n]) != (hyp[k:] - hyp[:n]))) if n > 0 else 0.0


def _windows(reference: list[int], hypothesis: list[int], k: int | None) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Per-unit topic labels of both, the window k, and the number of windows."""
    if sum(reference) != sum(hypothesis):
        raise ValueError("reference and hypothesis cover different numbers of units")
    k = k or default_k(reference)
    ref, hyp = _labels(reference), _labels(hypothesis)
    return ref, hyp, k, len(ref) - k


def equal_spacing(total: int, size: float) -> list[int]:
    """The baseline: topics of (about) `size` units each."""
    count = max(1, int(round(total / max(size, 1e-9))))
    edges = np.round(np.linspace(0, total, count + 1)).astype(int)
    return [int(b - a) for a, b in zip(edges[:-1], edges[1:]) if b > a]
