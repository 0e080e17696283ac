"""Streaming CTC prefix beam search with word-level LM fusion, hotwords and word timestamps.

    search = StreamingBeamSearch(Vocabulary(tokens, blank_id), DecoderOptions(), lm, hotwords)
    search.advance(log_probs_chunk)   # [frames, vocab] natural-log posteriors, any chunk size
    search.partial()                  # the transcript if the utterance ended now
    search.finalize()                 # end of utterance: that transcript, then reset

Each hypothesis keeps two acoustic scores, paths ending in blank (pb) and in its last token (pnb),
so the search is a true CTC prefix search: repeats merge unless a blank separates them. Per frame,
tokens below `token_prune_threshold` are dropped with numpy before the Python loop, frames where
only blank survives take a fast path, and hypotheses are cut to `beam_size` within `beam_prune`
of the best. Memory stays bounded on long streams: words older than `max_history_words` in the best
hypothesis are committed (hypotheses that disagree with them are dropped) every `_COMMIT_EVERY`
frames, counted from the start of the utterance, so any chunking decodes identically.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import exp, log1p
from operator import itemgetter

import numpy as np

from decoders.hotwords import HotwordScorer
from decoders.language_model import LanguageModel
from decoders.options import DecoderOptions
from decoders.prefix import Prefix, PrefixExtender, WordLink, word_span
from decoders.results import Transcript, Word
from decoders.vocabulary import Vocabulary

_NEG = -1e30          # log(0) that keeps arithmetic finite
_FLOOR = -1e4         # input log-probs are clipped here
_COMMIT_EVERY = 16    # frames between checks for words to commit
_NORM_TOLERANCE = 0.05  # a row's probabilities must sum to 1 within this

Beam = tuple[Prefix, float, float]  # (prefix, ln P(paths ending in blank), ln P(ending in its token))


@dataclass
class BeamState:
    """Everything one stream's search carries between chunks."""

    beams: list[Beam]                  # best first
    frames: int = 0                    # frames consumed in this utterance
    committed: list[Word] = field(default_factory=list)
    committed_depth: int = 0           # words (WordLink depth) already moved into `committed`


class StreamingBeamSearch:
    """One stream's incremental decoder. Share the LM between streams, never the search."""

    def __init__(self, vocabulary: Vocabulary, options: DecoderOptions = DecoderOptions(),
                 lm: LanguageModel | None = None, hotwords: HotwordScorer | None = None):
        self.vocabulary = vocabulary
        self.options = options
        self._extender = PrefixExtender(vocabulary, options, lm, hotwords)
        self.state = self._fresh_state()

    def _fresh_state(self) -> BeamState:
        return BeamState(beams=[(self._extender.root(), 0.0, _NEG)])

    def advance(self, log_probs: np.ndarray) -> None:
        """Consume the next frames. Raises ValueError (state untouched) on malformed input."""
        log_probs = self._checked(log_probs)
        blank = self.vocabulary.blank_id
        keep = log_probs >= self.options.token_prune_threshold
        keep[np.arange(len(log_probs)), log_probs.argmax(axis=1)] = True
        keep[:, blank] = False
        rows, tokens = np.nonzero(keep)
        values = log_probs[rows, tokens]
        order = np.lexsort((-values, rows))  # per frame, likeliest token first
        values, tokens = values[order].tolist(), tokens[order].tolist()
        ends = np.cumsum(keep.sum(axis=1)).tolist()
        blanks = log_probs[:, blank].tolist()
        start = 0
        for t, end in enumerate(ends):
            frame = self.state.frames
            if start == end:
                self._blank_frame(blanks[t])
            else:
                self._frame(frame, blanks[t], list(zip(tokens[start:end], values[start:end])))
            start = end
            self.state.frames = frame + 1
            if self.state.frames % _COMMIT_EVERY == 0:
                self._commit()

    def partial(self) -> Transcript:
        """The transcript if the utterance ended now, ranked as `finalize` ranks: the unfinished word
        completed and the end of the sentence scored.

        Ranking partials by the open score instead shows a caption that the final then rewrites
        whenever the end-of-sentence score or the last word's LM score changes the leader, a second
        (the endpoint's silence) after the words were heard. Ranked this way, the partial sent once
        speech stops is the final, and closing 16 beams per chunk costs little next to the search.
        """
        return self._closed_best()

    def finalize(self) -> Transcript:
        """Close the utterance (last word and end of sentence scored), return it, and reset."""
        transcript = self._closed_best()
        self.state = self._fresh_state()
        return transcript

    def _closed_best(self) -> Transcript:
        best_score, best_words = _NEG * 2, None
        for prefix, pb, pnb in self.state.beams:
            context, words = self._extender.close(prefix)
            score = _logaddexp(pb, pnb) + context
            if score > best_score:
                best_score, best_words = score, words
        return Transcript(tuple(self._words(best_words)), best_score)

    def decode(self, log_probs: np.ndarray) -> Transcript:
        """A whole utterance at once: `advance` then `finalize`."""
        self.advance(log_probs)
        return self.finalize()

    # -- per-frame search ------------------------------------------------------------------------

    def _blank_frame(self, blank_lp: float) -> None:
        """Only blank passed the threshold: every hypothesis stays, in blank, ranks unchanged."""
        self.state.beams = [(prefix, _logaddexp(pb, pnb) + blank_lp, _NEG)
                            for prefix, pb, pnb in self.state.beams]

    def _frame(self, frame: int, blank_lp: float, candidates: list[tuple[int, float]]) -> None:
        """One frame with non-blank candidates (likeliest first, so likely children come first).

        Stays (blank, the same token again) are scored first and set a floor every survivor will
        reach: best − beam_prune (the best rising as children come in) and, with a full beam of
        stays, the worst stay. A child whose score is below the floor is not added, and is not even
        created if a bound on its score (`gain` over its parent's context) is below it. Mass into
        hypotheses already present is always added, so the result is the same as scoring every
        child and pruning afterwards.
        """
        options = self.options
        repeat = dict(candidates)
        acc: dict[Prefix, list[float]] = {}
        totals = []
        stays: list[float] = []
        for prefix, pb, pnb in self.state.beams:
            total = pb + log1p(exp(pnb - pb)) if pb > pnb else pnb + log1p(exp(pb - pnb))
            totals.append(total)
            lp = repeat.get(prefix.token)
            if lp is None:
                acc[prefix] = [total + blank_lp, _NEG]
                stays.append(total + blank_lp + prefix.bonus)
                continue
            stay = pnb + lp  # the same token again, no blank between: merges
            acc[prefix] = [total + blank_lp, stay]
            stays.append(_logaddexp(total + blank_lp, stay) + prefix.bonus)
            cell = prefix.cell
            if cell is not None and lp > cell[0]:
                cell[0] = lp
                cell[1] = frame
        prune = options.beam_prune
        # With a full beam of stays, no survivor scores below the worst stay.
        worst = min(stays) if len(stays) >= options.beam_size else 2 * _NEG
        floor = max(max(stays) - prune, worst)

        extend = self._extender.extend
        gain = self._extender.gain
        silent = self._extender.silent
        for (prefix, pb, pnb), total in zip(self.state.beams, totals):
            last = prefix.token
            children = prefix.children
            for token, lp in candidates:
                if token != last:
                    score = total + lp
                elif pb > _NEG:
                    score = pb + lp  # a repeat after a blank is a new token
                else:
                    continue
                child = children.get(token)
                if child is None:
                    if silent[token] and not prefix.partial:
                        child = prefix  # a boundary after a boundary adds no text
                    elif score + prefix.context + gain[token] < floor:
                        continue
                    else:
                        child = extend(prefix, token, frame, lp)
                elif child.cell is not None and lp > child.cell[0]:
                    child.cell[0] = lp
                    child.cell[1] = frame
                entry = acc.get(child)
                if entry is None:  # only this parent reaches this child: its score is final
                    new = score + child.bonus
                    if new >= floor:
                        acc[child] = [_NEG, score]
                        if new - prune > floor:
                            floor = new - prune
                else:
                    other = entry[1]
                    entry[1] = (other + log1p(exp(score - other)) if other > score
                                else score + log1p(exp(other - score)))
        self._prune(acc)

    def _prune(self, acc: dict[Prefix, list[float]]) -> None:
        scored = []
        for prefix, (pb, pnb) in acc.items():
            total = pb + log1p(exp(pnb - pb)) if pb > pnb else pnb + log1p(exp(pb - pnb))
            scored.append((total + prefix.bonus, prefix, pb, pnb))
        scored.sort(key=_SCORE, reverse=True)
        floor = scored[0][0] - self.options.beam_prune
        self.state.beams = [(p, pb, pnb) for s, p, pb, pnb in scored[: self.options.beam_size]
                            if s >= floor]

    # -- bounded history ---------------------------------------------------------------------------

    def _commit(self) -> None:
        """Move words older than `max_history_words` (in the best beam) into `committed`."""
        state = self.state
        link = state.beams[0][0].words
        if link is None or link.depth - state.committed_depth <= self.options.max_history_words:
            return
        depth = link.depth - self.options.max_history_words
        target = _ancestor(link, depth)
        state.beams = [b for b in state.beams if _ancestor(b[0].words, depth) is target]
        state.committed = self._words(target)
        state.committed_depth = depth
        target.prev = None  # older links are now only in `committed`

    def _words(self, link: WordLink | None) -> list[Word]:
        """Committed words, then the words of `link`'s chain that are not committed yet."""
        chain = []
        while link is not None and link.depth > self.state.committed_depth:
            chain.append(link)
            link = link.prev
        return self.state.committed + [self._word(w.text, *word_span(w.cells))
                                       for w in reversed(chain)]

    def _word(self, text: str, start: int, end: int, log_conf: float) -> Word:
        seconds = self.options.frame_duration
        return Word(text, round(start * seconds, 3), round(end * seconds, 3), exp(log_conf))

    def _checked(self, log_probs: np.ndarray) -> np.ndarray:
        if not isinstance(log_probs, np.ndarray) or not np.issubdtype(log_probs.dtype, np.floating):
            raise ValueError("log-probs must be a float numpy array [frames, vocab]")
        if log_probs.ndim != 2 or log_probs.shape[1] != len(self.vocabulary):
            raise ValueError(f"log-probs must be [frames, {len(self.vocabulary)}], got {log_probs.shape}")
        if log_probs.shape[0] == 0:
            raise ValueError("empty chunk: log-probs have no frames")
        peak = log_probs.max()
        if not peak <= _NORM_TOLERANCE:  # also true when the array holds NaN
            if np.isnan(log_probs).any() or np.isposinf(log_probs).any():
                raise ValueError("log-probs contain NaN or +inf")
            raise ValueError("log-probs above 0: not natural-log probabilities (log_softmax output expected)")
        if np.abs(np.exp(log_probs).sum(axis=1) - 1.0).max() > _NORM_TOLERANCE:
            raise ValueError("rows do not sum to probability 1 (log_softmax output expected)")
        if log_probs.min() < _FLOOR:  # -inf (an underflowed probability) stays finite
            log_probs = np.maximum(log_probs, _FLOOR)
        return log_probs


def _logaddexp(a: float, b: float) -> float:
    return a + log1p(exp(b - a)) if a > b else b + log1p(exp(a - b))


def _ancestor(link: WordLink | None, depth: int) -> WordLink | None:
    while link is not None and link.depth > depth:
        link = link.prev
    return link


_SCORE = itemgetter(0)
