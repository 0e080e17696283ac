"""Hypothesis prefixes and how one grows by a token: CTC text rules, LM fusion, hotword boosts.

A `Prefix` is one distinct hypothesis text (a node of the prefix tree). Its children are created
once, by `PrefixExtender.extend`, and cached in `children`, so the language model and hotwords
score each (prefix, token) pair once, however many frames and beams reach it. Children hold no link
to their parent: the tree is freed from the top as beams move on, and completed words live in an
immutable linked list (`WordLink`) shared between hypotheses.

Scores (natural log) follow the fusion rule of `DecoderOptions`: when a word completes, `context`
gains alpha·(ln P_LM(word | history) + oov) + beta plus hotword boosts; `bonus` is `context` plus the
term for the unfinished word (hotword-prefix bonus, or the penalty for a prefix of no known word).
"""
from __future__ import annotations

from collections.abc import Hashable

from decoders.hotwords import HotwordScorer, HotwordState
from decoders.language_model import LanguageModel
from decoders.options import DecoderOptions
from decoders.vocabulary import Vocabulary

_LONG_PARTIAL = 6  # letters; unknown partial words longer than this are penalised proportionally
_CACHE_LIMIT = 100_000  # cached partial-word terms before the cache starts afresh


def word_span(cells: tuple[list, ...]) -> tuple[int, int, float]:
    """(start frame, end frame, log confidence) of a word from its tokens' cells."""
    return cells[0][1], cells[-1][1] + 1, min(c[0] for c in cells)


class WordLink:
    """A completed word and its tokens' cells (still rising while its last token is seen);
    `prev` is the word before it."""

    __slots__ = ("prev", "text", "cells", "depth")

    def __init__(self, prev: WordLink | None, text: str, cells: tuple[list, ...]):
        self.prev = prev
        self.text = text
        self.cells = cells
        self.depth: int = 1 if prev is None else prev.depth + 1


class Prefix:
    """A hypothesis text: completed words, the unfinished word, and the scores and states for both.

    `cells` holds one mutable [peak log-prob, peak frame] per token of the unfinished word; the beam
    search raises a token's cell whenever it sees the token stronger. A word spans from its first
    token's peak to one frame past its last token's peak (CTC emits tokens as spikes), and its
    confidence is the weakest of its tokens' peaks.
    """

    __slots__ = ("token", "children", "words", "partial", "cells", "cell",
                 "lm_state", "hot_state", "context", "bonus")

    def __init__(self, token: int, words: WordLink | None, partial: str, cells: tuple[list, ...],
                 lm_state: Hashable, hot_state: HotwordState | None, context: float, bonus: float):
        self.token = token
        self.children: dict[int, Prefix] = {}
        self.words = words
        self.partial = partial
        self.cells = cells
        self.cell: list | None = cells[-1] if cells else None
        self.lm_state = lm_state
        self.hot_state = hot_state
        self.context = context
        self.bonus = bonus


class PrefixExtender:
    """Creates child prefixes and closes hypotheses at the end of an utterance."""

    def __init__(self, vocabulary: Vocabulary, options: DecoderOptions,
                 lm: LanguageModel | None = None, hotwords: HotwordScorer | None = None):
        self._pieces = vocabulary.pieces
        self._starts_word = vocabulary.starts_word
        self._options = options
        self._lm = lm
        self._hotwords = hotwords if hotwords else None  # an empty scorer costs nothing
        self._partial_terms: dict[str, float] = {}
        # Tokens that add no text after a word boundary (the '▁' token): `extend` returns the parent.
        self.silent = [s and not p for s, p in zip(vocabulary.starts_word, vocabulary.pieces)]
        # Per token, the most a child's `bonus` can exceed its parent's `context` (LM log-probs and
        # penalties are <= 0; a word start may add beta and a hotword boost, any word a prefix boost).
        boost = self._hotwords.boost if self._hotwords is not None else 0.0
        word_gain = (max(0.0, options.beta) if lm is not None else 0.0) + boost
        self.gain = [boost + (word_gain if s else 0.0) for s in vocabulary.starts_word]

    def root(self) -> Prefix:
        """The empty hypothesis at the start of an utterance."""
        lm_state = self._lm.start() if self._lm is not None else None
        hot_state = self._hotwords.start if self._hotwords is not None else None
        return Prefix(-1, None, "", (), lm_state, hot_state, 0.0, 0.0)

    def extend(self, parent: Prefix, token: int, frame: int, log_prob: float) -> Prefix:
        """The prefix `parent` + `token` first emitted at `frame`; `parent` itself when the token
        adds no text (a word boundary right after a boundary or at the start)."""
        piece = self._pieces[token]
        if self._starts_word[token]:
            if not piece and not parent.partial:
                return parent
            if parent.partial:
                words, lm_state, hot_state, context = self._complete(parent)
            else:
                words, lm_state, hot_state = parent.words, parent.lm_state, parent.hot_state
                context = parent.context
            partial, cells = piece, ()
        else:
            words, lm_state, hot_state = parent.words, parent.lm_state, parent.hot_state
            context = parent.context
            partial, cells = parent.partial + piece, parent.cells
        if piece:
            cells = (*cells, [log_prob, frame])
        child = Prefix(token, words, partial, cells, lm_state, hot_state,
                       context, context + self._partial_term(partial))
        parent.children[token] = child
        return child

    def close(self, prefix: Prefix) -> tuple[float, WordLink | None]:
        """(final context score, final words) when the utterance ends after `prefix`: the
        unfinished word completes, the LM scores the end of the sentence, open phrases lose boosts."""
        if prefix.partial:
            words, lm_state, hot_state, context = self._complete(prefix)
        else:
            words, lm_state, hot_state = prefix.words, prefix.lm_state, prefix.hot_state
            context = prefix.context
        if self._lm is not None:
            context += self._options.alpha * self._lm.end_score(lm_state)
        if self._hotwords is not None:
            context += self._hotwords.end(hot_state)
        return context, words

    def _complete(self, prefix: Prefix) -> tuple[WordLink, Hashable, HotwordState | None, float]:
        """Finish the unfinished word of `prefix`: its link, LM and hotword states, context score."""
        word = prefix.partial
        context = prefix.context
        lm_state = prefix.lm_state
        hot_state = prefix.hot_state
        hotwords = self._hotwords
        if self._lm is not None:
            log_p, lm_state = self._lm.score(lm_state, word)
            if not (self._lm.is_known(word) or (hotwords is not None and word in hotwords.words)):
                log_p += self._options.oov_penalty
            context += self._options.alpha * log_p + self._options.beta
        if hotwords is not None:
            delta, hot_state = hotwords.advance(hot_state, word)
            context += delta
        link = WordLink(prefix.words, word, prefix.cells)
        return link, lm_state, hot_state, context

    def _partial_term(self, partial: str) -> float:
        term = self._partial_terms.get(partial)
        if term is None:
            if len(self._partial_terms) >= _CACHE_LIMIT:
                self._partial_terms.clear()
            term = self._partial_terms[partial] = self._compute_partial_term(partial)
        return term

    def _compute_partial_term(self, partial: str) -> float:
        if not partial:
            return 0.0
        if self._hotwords is not None:
            bonus = self._hotwords.partial_bonus(partial)
            if bonus is not None:
                return bonus
        if self._lm is None or self._lm.is_prefix(partial):
            return 0.0
        return self._options.partial_word_penalty * max(1.0, len(partial) / _LONG_PARTIAL)
