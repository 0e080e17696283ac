"""What the decoder hands out: words with times and confidences, and the transcript around them."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Word:
    """A decoded word. `start`/`end` are seconds from the start of the utterance (frame index ×
    frame duration; `end` is the end of the word's last token frame). `confidence` is the posterior
    of the word's least certain token, each token taken at its most confident frame."""

    text: str
    start: float
    end: float
    confidence: float


@dataclass(frozen=True)
class Transcript:
    """The best hypothesis: its words, and its total score (acoustic + LM + boosts, natural log)."""

    words: tuple[Word, ...]
    score: float

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)
