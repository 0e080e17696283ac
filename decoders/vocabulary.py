"""The decoder's view of a token table: what text each token adds and whether it starts a word.

One rule serves both vocabulary kinds (see models/tokenizer.py): a token whose text begins with '▁'
starts a new word, the rest of its text begins that word. In the character vocabulary the space
token is '▁' itself (starts a word, adds no letters); in a sentencepiece vocabulary '▁the' starts the
word 'the' and 'ing' continues the current word.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.tokenizer import WORD_BOUNDARY


class Vocabulary:
    """Token id -> (piece text without '▁', starts a word), with the CTC blank id."""

    def __init__(self, tokens: Sequence[str], blank_id: int):
        if not 0 <= blank_id < len(tokens):
            raise ValueError(f"blank id {blank_id} outside a vocabulary of {len(tokens)} tokens")
        self.tokens = list(tokens)
        self.blank_id = blank_id
        self.starts_word = [t.startswith(WORD_BOUNDARY) for t in self.tokens]
        self.pieces = [t.lstrip(WORD_BOUNDARY) for t in self.tokens]
        self.starts_word[blank_id] = False
        self.pieces[blank_id] = ""

    def __len__(self) -> int:
        return len(self.tokens)

    def collapse(self, ids: Sequence[int]) -> str:
        """CTC-collapse a frame-wise id sequence (merge repeats, drop blanks) into text."""
        words: list[str] = []
        previous = -1
        for token in ids:
            if token != previous and token != self.blank_id:
                if self.starts_word[token] or not words:
                    words.append(self.pieces[token])
                else:
                    words[-1] += self.pieces[token]
            previous = token
        return " ".join(w for w in words if w)

    def greedy(self, log_probs: np.ndarray) -> str:
        """Best-path (argmax) decoding: the baseline the beam search must beat."""
        return self.collapse(np.asarray(log_probs).argmax(axis=1).tolist())
