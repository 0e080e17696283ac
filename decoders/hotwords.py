"""Per-session context biasing: words and phrases that earn a score boost when decoded.

Phrases live in a word trie. Each decoded word that continues a phrase earns `boost`; when the phrase
breaks off before its end (or the utterance ends), the boost earned by the unfinished match is taken
back, so a half-said phrase gains nothing (the back-off rule of k2/icefall context graphs). An
unfinished word that is a prefix of a hotword earns boost × (letters so far / letters of the shortest
such hotword), which keeps the hypothesis alive until the word completes. An empty list is falsy:
the beam search then skips hotwords altogether.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from models.tokenizer import normalize_text


@dataclass(eq=False)
class _PhraseNode:
    children: dict[str, "_PhraseNode"] = field(default_factory=dict)
    is_end: bool = False


@dataclass(frozen=True)
class HotwordState:
    """Where a hypothesis stands in the phrase trie, and the boost it would lose on a break-off."""

    node: _PhraseNode
    pending: float = 0.0


class HotwordScorer:
    """Phrases -> boost. Stateless itself: hypotheses carry `HotwordState`s."""

    def __init__(self, phrases: Iterable[str] = (), boost: float = 5.0):
        if boost <= 0:
            raise ValueError(f"hotword boost must be > 0, got {boost}")
        self.boost = boost
        self._root = _PhraseNode()
        self._shortest: dict[str, int] = {}  # word prefix -> length of the shortest hotword with it
        words: set[str] = set()
        for phrase in phrases:
            node = self._root
            for word in normalize_text(phrase).split():
                node = node.children.setdefault(word, _PhraseNode())
                words.add(word)
            node.is_end = node is not self._root
        self.words = frozenset(words)
        for word in words:
            for end in range(1, len(word) + 1):
                prefix = word[:end]
                self._shortest[prefix] = min(self._shortest.get(prefix, len(word)), len(word))
        self.start = HotwordState(self._root)

    def __bool__(self) -> bool:
        return bool(self.words)

    def advance(self, state: HotwordState, word: str) -> tuple[float, HotwordState]:
        """(score change, new state) when `word` completes."""
        delta = 0.0
        node = state.node.children.get(word)
        pending = state.pending
        if node is None and state.node is not self._root:  # the match broke off: restart
            delta -= pending
            pending = 0.0
            node = self._root.children.get(word)
        if node is None:
            return delta, self.start
        delta += self.boost
        pending += self.boost
        if node.is_end:
            pending = 0.0  # a whole phrase is banked
            if not node.children:
                return delta, self.start
        return delta, HotwordState(node, pending)

    def end(self, state: HotwordState) -> float:
        """Score change at the end of the utterance: an unfinished phrase gives its boost back."""
        return -state.pending

    def partial_bonus(self, partial: str) -> float | None:
        """Boost of an unfinished word that is a prefix of a hotword; None if it is no such prefix."""
        shortest = self._shortest.get(partial)
        return None if shortest is None else self.boost * len(partial) / shortest
