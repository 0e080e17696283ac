"""Online speaker tagging: embedding of each final segment -> online clustering -> stable label.

As diart does, clusters are kept as centroids (sums of duration-weighted, L2-normed embeddings):

* a span is *confident* when it lasts at least `min_confident_s` and is not silent; only confident
  spans move a centroid;
* a confident span of at least `min_new_s` farther than `threshold` (cosine distance) from every
  centroid opens a new speaker, unless `max_speakers` are open: then, as any other span, it joins
  the nearest one (a mixed window at a speaker change, or a back-channel, never opens one);
* the first span of a session opens "Speaker 1" even when it is not confident; such a *tentative*
  speaker is taken over by the first confident span that would otherwise open a new one, so a
  short "Hello?" before the first sentence does not leave a phantom speaker behind;
* when an update brings two centroids within `merge_threshold`, the newer speaker merges into the
  older: a `Merge` is reported (the session sends `speaker_merge` and relabels its stored
  segments), and the retired label is never given again. Labels never renumber.

Segments of two windows of ~`window_s` or more are embedded window by window (one 1.6 s GE2E
partial each), so a speaker change inside a segment is found: adjacent windows are grouped into runs while they stay near each other
and near the same centroid; each run is clustered as a span of its own. The segment's label is
the one that holds most of its time; `Tagging.turns` has the detail.

Talk-time share counts each segment's duration under the segment's label, so the share a client
sees live equals what the stored note gives (`share_of`).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from models.speaker import SILENCE_RMS, clip_rms

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpeakerOptions:
    enabled: bool = True
    max_speakers: int = 8
    threshold: float = 0.28          # cosine distance that opens a new speaker (tuned: bench/speaker_eval.py)
    merge_threshold: float = 0.16    # centroids closer than this merge
    min_confident_s: float = 1.0     # shorter spans never move a speaker
    min_new_s: float = 2.0           # shorter spans never open one
    window_s: float = 1.5            # windows inside long segments
    history_s: float = 30.0          # model-rate audio kept to embed a final's span
    ahead_silence_s: float = 0.5     # trailing silence at which a segment is embedded before its final


@dataclass
class Cluster:
    number: int                      # "Speaker {number}"
    total: np.ndarray                # sum of weight * embedding
    weight: float
    confident: bool

    @property
    def label(self) -> str:
        return f"Speaker {self.number}"

    @property
    def centroid(self) -> np.ndarray:
        return self.total / max(float(np.linalg.norm(self.total)), 1e-12)

    def add(self, embedding: np.ndarray, weight: float) -> None:
        self.total = self.total + weight * embedding
        self.weight += weight


@dataclass(frozen=True)
class Merge:
    source: str                      # the retired label
    target: str                      # the label it joins


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: str


@dataclass(frozen=True)
class Tagging:
    speaker: str                     # the label holding most of the segment
    turns: tuple[Turn, ...]
    merges: tuple[Merge, ...] = ()
    relabelled: tuple[tuple[int, str], ...] = ()   # earlier segments a merge moved: (index, label)
    embedded_ahead: bool = False     # its windows were embedded before the final (embed_ahead)


class OnlineClustering:
    def __init__(self, options: SpeakerOptions):
        self.options = options
        self.clusters: list[Cluster] = []
        self._next_number = 1

    def distances(self, embedding: np.ndarray) -> np.ndarray:
        if not self.clusters:
            return np.zeros(0)
        return 1.0 - np.stack([c.centroid for c in self.clusters]) @ embedding

    def nearest(self, embedding: np.ndarray) -> tuple[Cluster | None, float]:
        d = self.distances(embedding)
        if not len(d):
            return None, np.inf
        i = int(np.argmin(d))
        return self.clusters[i], float(d[i])

    def assign(self, embedding: np.ndarray, seconds: float, confident: bool) -> tuple[str, list[Merge]]:
        """The label of one span (and any merges its update caused)."""
        opts = self.options
        confident = confident and seconds >= opts.min_confident_s
        best, distance = self.nearest(embedding)
        weight = seconds if confident else 0.0
        if best is None:
            return self._open(embedding, weight, confident).label, []
        if distance < opts.threshold:
            if confident:
                best.add(embedding, weight)
                best.confident = True
                return best.label, self._merge_close(best)
            return best.label, []
        if not confident or seconds < opts.min_new_s:
            return best.label, []
        tentative = [c for c in self.clusters if not c.confident]
        if tentative:                  # take over a speaker that only has unconfident evidence
            cluster = min(tentative, key=lambda c: float(1.0 - c.centroid @ embedding))
            cluster.total, cluster.weight, cluster.confident = weight * embedding, weight, True
            return cluster.label, self._merge_close(cluster)
        if len(self.clusters) < opts.max_speakers:
            return self._open(embedding, weight, True).label, []
        return best.label, []

    def _open(self, embedding: np.ndarray, weight: float, confident: bool) -> Cluster:
        cluster = Cluster(self._next_number, embedding * max(weight, 1e-3), weight, confident)
        self._next_number += 1
        self.clusters.append(cluster)
        return cluster

    def _merge_close(self, moved: Cluster) -> list[Merge]:
        merges = []
        while True:
            others = [c for c in self.clusters if c is not moved and c.confident]
            if not others:
                return merges
            d = [float(1.0 - moved.centroid @ c.centroid) for c in others]
            i = int(np.argmin(d))
            if d[i] >= self.options.merge_threshold:
                return merges
            old, new = sorted((moved, others[i]), key=lambda c: c.number)
            old.total, old.weight = old.total + new.total, old.weight + new.weight
            self.clusters.remove(new)
            merges.append(Merge(new.label, old.label))
            moved = old


class AudioHistory:
    """The last `capacity` samples of a stream, addressed by absolute sample position."""

    def __init__(self, capacity: int):
        self.buffer = np.zeros(max(1, capacity), np.float32)
        self.end = 0                   # absolute position after the newest sample

    def append(self, samples: np.ndarray) -> None:
        n, size = len(samples), len(self.buffer)
        if n >= size:
            samples, n = samples[-size:], size
            self.end += len(samples) - n
        idx = (self.end + np.arange(n)) % size
        self.buffer[idx] = samples
        self.end += n

    def span(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop), clipped to what is kept."""
        start, stop = max(start, self.end - len(self.buffer), 0), min(stop, self.end)
        if stop <= start:
            return np.zeros(0, np.float32)
        return self.buffer[np.arange(start, stop) % len(self.buffer)]


def window_bounds(n_samples: int, window: int) -> list[tuple[int, int]]:
    """Equal windows of about `window` samples covering [0, n) (one when shorter than two)."""
    count = max(1, n_samples // window)
    edges = np.linspace(0, n_samples, count + 1).round().astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


class Windows(NamedTuple):
    bounds: list[tuple[int, int]]    # sample ranges within the span
    embeddings: np.ndarray           # [windows, 256]
    voiced: list[bool]


class SpeakerTracker:
    """One session's speakers: tags each final's span, keeps labels and the talk-time share."""

    def __init__(self, encoder, options: SpeakerOptions):
        self.encoder, self.options = encoder, options
        self.rate = encoder.sample_rate
        self.clustering = OnlineClustering(options)
        self.labels: dict[int, str] = {}   # segment index -> label
        self.seconds: dict[str, float] = {}

    def windows(self, audio: np.ndarray) -> Windows:
        """The span's windows and their embeddings: the model's share of tagging, and a pure
        function of the audio (so it may run before the final, see `SessionSpeakers.embed_ahead`)."""
        window = int(self.options.window_s * self.rate)
        bounds = window_bounds(len(audio), window) if len(audio) >= 2 * window else [(0, len(audio))]
        embeddings = self.encoder.embed_many([audio[a:b] for a, b in bounds])  # one partial a window
        return Windows(bounds, embeddings, [clip_rms(audio[a:b]) > SILENCE_RMS for a, b in bounds])

    def tag(self, audio: np.ndarray, start: float, index: int | None = None,
            windows: Windows | None = None) -> Tagging:
        """Label the span `audio` (model rate) that begins at `start` seconds (`windows`: those of
        `audio`, when already embedded)."""
        bounds, embeddings, voiced = windows or self.windows(audio)
        runs = self._runs(embeddings, voiced) if len(bounds) > 1 else [(0, 1, embeddings[0])]
        turns, merges = [], []
        for first, last, embedding in runs:
            a, b = bounds[first][0], bounds[last - 1][1]
            seconds = (b - a) / self.rate
            label, new_merges = self.clustering.assign(embedding, seconds, any(voiced[first:last]))
            merges += new_merges
            for m in new_merges:
                turns = [Turn(t.start, t.end, m.target if t.speaker == m.source else t.speaker) for t in turns]
            if turns and turns[-1].speaker == label:
                turns[-1] = Turn(turns[-1].start, start + b / self.rate, label)
            else:
                turns.append(Turn(start + a / self.rate, start + b / self.rate, label))
        held: dict[str, float] = {}
        for t in turns:
            held[t.speaker] = held.get(t.speaker, 0.0) + t.end - t.start
        speaker = max(held, key=held.get)
        relabelled = {}
        for m in merges:
            relabelled.update({i: m.target for i in self._apply_merge(m)})
        if index is not None:
            self.labels[index] = speaker
        self.seconds[speaker] = self.seconds.get(speaker, 0.0) + len(audio) / self.rate
        return Tagging(speaker, tuple(turns), tuple(merges), tuple(sorted(relabelled.items())))

    def _runs(self, embeddings: np.ndarray, voiced) -> list[tuple[int, int, np.ndarray]]:
        """Group adjacent windows into runs of one speaker: a window starts a new run when it is
        far from the run so far, or nearest to another known speaker than the run is."""
        def owner(e):
            cluster, d = self.clustering.nearest(e)
            return cluster.number if cluster is not None and d < self.options.threshold else None

        runs, first, total = [], 0, embeddings[0].copy()
        for i in range(1, len(embeddings)):
            mean = total / max(float(np.linalg.norm(total)), 1e-12)
            far = float(1.0 - mean @ embeddings[i]) >= self.options.threshold
            switch = owner(embeddings[i]) != owner(mean) and voiced[i]
            if far or switch:
                runs.append((first, i, mean))
                first, total = i, embeddings[i].copy()
            else:
                total += embeddings[i]
        runs.append((first, len(embeddings), total / max(float(np.linalg.norm(total)), 1e-12)))
        return runs

    def _apply_merge(self, merge: Merge) -> list[int]:
        moved = [i for i, label in self.labels.items() if label == merge.source]
        for i in moved:
            self.labels[i] = merge.target
        self.seconds[merge.target] = self.seconds.get(merge.target, 0.0) + self.seconds.pop(merge.source, 0.0)
        return moved

    def segments_of(self, label: str) -> list[int]:
        return sorted(i for i, lab in self.labels.items() if lab == label)

    def share(self) -> list[dict]:
        return share_of(self.seconds)


def share_of(seconds: dict[str, float]) -> list[dict]:
    """[{"speaker", "seconds", "percent"}] in label order; percents of the labelled time."""
    total = sum(seconds.values())
    def number(label: str):
        tail = label.rsplit(" ", 1)[-1]
        return (0, int(tail), label) if tail.isdigit() else (1, 0, label)
    return [{"speaker": label, "seconds": round(s, 3), "percent": round(100.0 * s / total, 1) if total else 0.0}
            for label, s in sorted(seconds.items(), key=lambda kv: number(kv[0]))]


class SessionSpeakers:
    """One session's speaker tagging: the recent audio, the tracker, store writes, event fields.

    `tag` runs in the engine's speaker thread (embedding + clustering, never on the event loop);
    `persist` in a store thread. So that a final does not wait for the model, `embed_ahead`
    embeds the span of the words heard so far once speech has paused (`ahead_silence_s`), in the
    speaker thread, before the endpoint fires; `tag` reuses those windows when the final's span
    is the same (the embedding is a function of the audio alone, so the labels are the same as
    without it). A resumed session keeps its stored labels and share, and numbers new speakers
    after the stored ones (clusters are not persisted: a returning voice gets a new label)."""

    def __init__(self, encoder, options: SpeakerOptions, time_offset: float = 0.0, stored=()):
        self.tracker = SpeakerTracker(encoder, options)
        self.rate = encoder.sample_rate
        self.history = AudioHistory(int(options.history_s * self.rate))
        self.time_offset = time_offset
        numbers = [0]
        for seg in stored:
            if seg.speaker:
                self.tracker.labels[seg.index] = seg.speaker
                self.tracker.seconds[seg.speaker] = self.tracker.seconds.get(seg.speaker, 0.0) + seg.end - seg.start
                tail = seg.speaker.rsplit(" ", 1)[-1]
                numbers.append(int(tail) if tail.isdigit() else 0)
        self.tracker.clustering._next_number = max(numbers) + 1
        self.ahead: tuple[tuple[int, int], Windows] | None = None   # (span, its windows)
        self._lock = threading.Lock()  # embed_ahead and tag may run in different speaker threads

    def append(self, samples: np.ndarray) -> None:
        """Model-rate samples of this connection, in order (the same ones the encoder gets)."""
        self.history.append(samples)

    def span(self, start: float, end: float) -> tuple[int, int]:
        """Sample range of [start, end) seconds on the session's timeline."""
        return (int(round((start - self.time_offset) * self.rate)),
                int(round((end - self.time_offset) * self.rate)))

    def embed_ahead(self, start: float, end: float) -> None:
        """Embed [start, end) now, for the final that will most likely have this span."""
        try:
            with self._lock:
                span = self.span(start, end)
                audio = self.history.span(*span)
                if len(audio) >= self.rate // 10:
                    self.ahead = span, self.tracker.windows(audio)
        except Exception:
            log.exception("speaker embedding ahead of a final failed")

    def tag(self, segment) -> Tagging | None:
        """The segment's speakers (None when its audio is gone or the model fails)."""
        try:
            with self._lock:
                span = self.span(segment.start, segment.end)
                ahead, self.ahead = self.ahead, None
                audio = self.history.span(*span)
                if len(audio) < self.rate // 10:
                    return None
                windows = ahead[1] if ahead is not None and ahead[0] == span else None
                tagging = self.tracker.tag(audio, segment.start, segment.index, windows)
                return replace(tagging, embedded_ahead=windows is not None)
        except Exception:
            log.exception("speaker tagging of segment %s failed", segment.index)
            return None

    @staticmethod
    def persist(store, session_id: str, index: int, tagging: Tagging) -> None:
        store.set_speaker(session_id, index, tagging.speaker)
        for earlier, label in tagging.relabelled:
            store.set_speaker(session_id, earlier, label)

    def merge_events(self, tagging: Tagging) -> list[dict]:
        moved: dict[str, list[int]] = {}
        for index, label in tagging.relabelled:
            moved.setdefault(label, []).append(index)
        return [{"from": m.source, "into": m.target, "segments": moved.get(m.target, [])}
                for m in tagging.merges]

    def final_fields(self, tagging: Tagging | None) -> dict:
        if tagging is None:
            return {"speaker": None}
        fields = {"speaker": tagging.speaker}
        if len({t.speaker for t in tagging.turns}) > 1:
            fields["speaker_turns"] = [{"speaker": t.speaker, "start": round(t.start, 3), "end": round(t.end, 3)}
                                       for t in tagging.turns]
        return fields

    def share_fields(self) -> dict:
        share = self.tracker.share()
        return {"speakers": share, "total": round(sum(s["seconds"] for s in share), 3)}
