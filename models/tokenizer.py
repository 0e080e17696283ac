"""Tokenizers behind one interface: characters (the embedded model) and sentencepiece (NeMo models).

Convention shared with the decoder: a token's text uses '▁' (U+2581) for a word boundary. In the
character vocabulary '▁' is the space token; in sentencepiece vocabularies a piece starting with '▁'
begins a new word. So `"".join(pieces).replace("▁", " ").strip()` turns any token sequence into text.
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Protocol

WORD_BOUNDARY = "▁"
BLANK = "<blk>"
CHARACTER_ALPHABET = list("abcdefghijklmnopqrstuvwxyz'")


def normalize_text(text: str) -> str:
    """Lower-case ASCII words of [a-z'], single-spaced: the form the tokenizers and the LM expect."""
    text = text.replace("’", "'").replace("‘", "'")  # typographic apostrophes survive folding
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    words = (w.strip("'") for w in re.split(r"[^a-z']+", text))
    return " ".join(w for w in words if w)


def pieces_to_text(pieces: list[str]) -> str:
    return "".join(pieces).replace(WORD_BOUNDARY, " ").strip()


class Tokenizer(Protocol):
    kind: str
    tokens: list[str]      # id -> token text, blank included
    blank_id: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


def read_tokens(path: Path) -> list[str]:
    """Read a `tokens.txt` ("<token> <id>" per line, ids 0..V-1 in order)."""
    tokens: list[str] = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.rsplit(" ", 1)
        if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) != len(tokens):
            raise ValueError(f"{path}:{line_no}: expected '<token> {len(tokens)}', got {line!r}")
        tokens.append(parts[0])
    return tokens


def write_tokens(path: Path, tokens: list[str]) -> None:
    path.write_text("".join(f"{t} {i}\n" for i, t in enumerate(tokens)), encoding="utf-8")


class CharTokenizer:
    """Blank, word boundary, then letters. Text is normalised before encoding."""

    kind = "characters"

    def __init__(self, tokens: list[str] | None = None, blank_id: int = 0):
        self.tokens = tokens if tokens is not None else [BLANK, WORD_BOUNDARY, *CHARACTER_ALPHABET]
        self.blank_id = blank_id
        self._ids = {t: i for i, t in enumerate(self.tokens) if i != blank_id}
        if WORD_BOUNDARY not in self._ids:
            raise ValueError(f"character vocabulary lacks the word-boundary token {WORD_BOUNDARY!r}")

    def encode(self, text: str) -> list[int]:
        spaced = normalize_text(text).replace(" ", WORD_BOUNDARY)
        return [self._ids[c] for c in spaced if c in self._ids]

    def decode(self, ids: list[int]) -> str:
        return pieces_to_text([self.tokens[i] for i in ids if i != self.blank_id])


class SentencePieceTokenizer:
    """A sentencepiece model; the CTC blank is an extra id (NeMo puts it last)."""

    kind = "sentencepiece"

    def __init__(self, model_path: Path, blank_id: int | None = None):
        import sentencepiece

        self._sp = sentencepiece.SentencePieceProcessor(model_file=str(model_path))
        size = self._sp.get_piece_size()
        self.blank_id = size if blank_id is None else blank_id
        pieces = [self._sp.id_to_piece(i) for i in range(size)]
        self.tokens = pieces[: self.blank_id] + [BLANK] + pieces[self.blank_id:]

    def _sp_id(self, token_id: int) -> int:
        return token_id - (token_id > self.blank_id)

    def encode(self, text: str) -> list[int]:
        return [i + (i >= self.blank_id) for i in self._sp.encode(text)]

    def decode(self, ids: list[int]) -> str:
        return self._sp.decode([self._sp_id(i) for i in ids if i != self.blank_id])
