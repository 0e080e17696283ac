"""Decoder options: every knob of the streaming beam search, in one frozen dataclass."""
from __future__ import annotations

import math
from dataclasses import dataclass

LN10 = math.log(10.0)


@dataclass(frozen=True)
class DecoderOptions:
    """Settings of `StreamingBeamSearch`. All scores are natural logs.

    A hypothesis is ranked by  log P_AM + Σ_words [alpha·(ln P_LM(w | history) + oov) + beta]
    + partial-word term + hotword boosts, where `oov` is `oov_penalty` for a word outside the
    LM's unigram list (0 otherwise) and the LM's end-of-sentence probability joins at `finalize()`.
    """

    beam_size: int = 16
    alpha: float = 0.5                 # LM weight
    beta: float = 1.5                  # per-word insertion bonus (applied only with an LM)
    token_prune_threshold: float = -5.0  # per frame, tokens below this log-prob are skipped (argmax kept)
    beam_prune: float = 10.0           # drop hypotheses scoring more than this below the best
    oov_penalty: float = -10.0 * LN10  # added to ln P_LM of a word outside the unigram list
    partial_word_penalty: float = -10.0  # unfinished word that starts no known word (× len/6 past 6 chars)
    max_history_words: int = 16        # words older than this in the best beam are committed
    frame_duration: float = 0.04       # seconds per acoustic-model frame
    hotword_boost: float = 5.0         # default boost per matched hotword word

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {self.beam_size}")
        if self.beam_prune <= 0:
            raise ValueError(f"beam_prune must be > 0, got {self.beam_prune}")
        if self.token_prune_threshold > 0:
            raise ValueError(f"token_prune_threshold is a log-prob (<= 0), got {self.token_prune_threshold}")
        if self.max_history_words < 1:
            raise ValueError(f"max_history_words must be >= 1, got {self.max_history_words}")
        if self.frame_duration <= 0:
            raise ValueError(f"frame_duration must be > 0, got {self.frame_duration}")
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")
        if self.oov_penalty > 0 or self.partial_word_penalty > 0:
            raise ValueError("oov_penalty and partial_word_penalty are penalties (<= 0)")
        if self.hotword_boost <= 0:
            raise ValueError(f"hotword_boost must be > 0, got {self.hotword_boost}")
