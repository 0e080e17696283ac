"""Synthetic test material for the decoder: a template-grammar corpus and realistic CTC posteriors.

No audio and no evaluation data: sentences come from a small grammar (so an LM trained on one sample
of it knows the words of another), and `synthesize_log_probs` turns a token sequence into the kind
of posteriors a CTC model emits: mostly blank, one- or two-frame peaks per token, confusions where a
similar-sounding letter wins and the right one comes second, and sometimes a weak word boundary.
Used by tests and `bench/decoder_speed.py`.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.tokenizer import WORD_BOUNDARY, Tokenizer

_WORDS = {
    "det": "the a this that every one my your our their".split(),
    "adj": ("old young small large quiet happy busy little bright dark green red cold warm "
            "tired clever gentle honest brave careful simple strange famous heavy").split(),
    "noun": ("farmer teacher doctor driver river garden window station market letter story "
             "captain sister brother neighbour village kitchen question picture mountain "
             "basket engine bridge forest student island morning weather dinner paper").split(),
    "verb": ("found painted opened carried watched cleaned visited followed answered repaired "
             "remembered described noticed wanted finished started").split(),
    "prep": "near behind across beside under over into along".split(),
    "name": "anna peter maria james linda robert susan thomas".split(),
    "adv": "quickly slowly carefully quietly happily suddenly".split(),
    "time": ["today", "yesterday", "tonight", "again", "early", "later", "every day",
             "in the morning", "after dinner", "before winter", "last week", "on sunday"],
}
_TEMPLATES = [
    "{det} {adj} {noun} {verb} {det} {noun} {time}",
    "{name} {verb} the {adj} {noun} {prep} the {noun}",
    "{det} {noun} {verb} {det} {adj} {noun} {prep} the {noun} {time}",
    "{name} and {name} {verb} {det} {noun} {adv}",
    "i think {name} {verb} the {noun} {time}",
    "did you see the {adj} {noun} {prep} the {noun}",
    "we {verb} {det} {adj} {noun} {adv} {time}",
    "{name} said that the {noun} was {adj}",
    "the {noun} {prep} the {noun} was {adj} and {adj}",
]

# Letters a CTC model tends to confuse (by sound or shape).
_SIMILAR = {"a": "e", "e": "i", "i": "e", "o": "u", "u": "o", "b": "p", "p": "b", "d": "t",
            "t": "d", "m": "n", "n": "m", "s": "z", "z": "s", "c": "k", "k": "c", "f": "v",
            "v": "f", "g": "k", "j": "g", "l": "r", "r": "l", "w": "v", "y": "i", "h": "a",
            "q": "k", "x": "s", "'": "s"}


def template_sentences(count: int, seed: int) -> list[str]:
    """`count` sentences of the grammar, reproducibly."""
    rng = np.random.default_rng(seed)
    sentences = []
    for _ in range(count):
        template = _TEMPLATES[rng.integers(len(_TEMPLATES))]
        parts = template.split("{")
        out = [parts[0]]
        for part in parts[1:]:
            slot, rest = part.split("}", 1)
            choices = _WORDS[slot]
            out.append(choices[rng.integers(len(choices))] + rest)
        sentences.append(" ".join("".join(out).split()))
    return sentences


def confusable_ids(tokens: Sequence[str]) -> dict[int, int]:
    """token id -> id of a similar-sounding token (character vocabularies; others get none)."""
    ids = {t: i for i, t in enumerate(tokens)}
    return {ids[a]: ids[b] for a, b in _SIMILAR.items() if a in ids and b in ids}


def synthesize_log_probs(ids: Sequence[int], vocab_size: int, blank_id: int,
                         rng: np.random.Generator, confusion: float = 0.06,
                         confusable: dict[int, int] | None = None,
                         weak_ids: frozenset[int] = frozenset()) -> np.ndarray:
    """Natural-log posteriors [frames, vocab] (float32) whose best path spells `ids`, mostly.

    Each token gets 0–2 blank frames before it (at least one between equal tokens) and a peak of
    1–2 frames. With probability `confusion` a token is confused: its peak's winner is the similar
    token from `confusable` and the right token is second, or, for tokens in `weak_ids` (e.g. the
    word boundary), blank wins. The rest of each frame's mass is spread over random tokens.
    """
    confusable = confusable or {}
    frames: list[tuple[int, float, int, float]] = []  # (top token, its prob, runner-up, its prob)

    def blank_frame() -> None:
        frames.append((blank_id, rng.uniform(0.85, 0.995), int(rng.integers(vocab_size)), 0.0))

    previous = -1
    for token in ids:
        for _ in range(max(int(rng.integers(0, 3)), int(token == previous))):
            blank_frame()
        confused = rng.random() < confusion
        for _ in range(int(rng.integers(1, 3))):
            peak = rng.uniform(0.5, 0.97)
            if confused and token in confusable:
                frames.append((confusable[token], peak, token, (1 - peak) * rng.uniform(0.5, 0.9)))
            elif confused and token in weak_ids:
                frames.append((blank_id, peak, token, (1 - peak) * rng.uniform(0.3, 0.8)))
            else:
                frames.append((token, peak, blank_id, (1 - peak) * rng.uniform(0.3, 0.8)))
        previous = token
    for _ in range(int(rng.integers(1, 4))):
        blank_frame()

    probs = rng.dirichlet(np.full(vocab_size, 0.3), size=len(frames))
    for t, (top, p_top, second, p_second) in enumerate(frames):
        rest = 1.0 - p_top - p_second
        probs[t] *= rest
        probs[t, top] += p_top
        probs[t, second] += p_second
    log_probs = np.log(np.maximum(probs, 1e-12))
    log_probs -= np.logaddexp.reduce(log_probs, axis=1, keepdims=True)
    return log_probs.astype(np.float32)


def log_probs_from_frames(frames: Sequence[dict[int, float]], vocab_size: int) -> np.ndarray:
    """Hand-made posteriors: one {token id: probability} dict per frame, the remaining mass spread
    evenly over the other tokens. Natural logs, float32, [frames, vocab]."""
    probs = np.empty((len(frames), vocab_size))
    for t, frame in enumerate(frames):
        rest = (1.0 - sum(frame.values())) / (vocab_size - len(frame))
        probs[t] = max(rest, 1e-9)
        for token, p in frame.items():
            probs[t, token] = p
    log_probs = np.log(probs)
    log_probs -= np.logaddexp.reduce(log_probs, axis=1, keepdims=True)
    return log_probs.astype(np.float32)


def template_test_set(tokenizer: Tokenizer, count: int, seed: int, confusion: float = 0.06
                      ) -> tuple[list[str], list[np.ndarray]]:
    """`count` template sentences and their synthetic posteriors over `tokenizer`'s vocabulary."""
    rng = np.random.default_rng(seed)
    confusable = confusable_ids(tokenizer.tokens)
    boundary = frozenset(i for i, t in enumerate(tokenizer.tokens) if t == WORD_BOUNDARY)
    sentences = template_sentences(count, seed)
    log_probs = [synthesize_log_probs(tokenizer.encode(s), len(tokenizer.tokens), tokenizer.blank_id,
                                      rng, confusion, confusable, boundary) for s in sentences]
    return sentences, log_probs


def build_template_lm(directory: Path, sentences: int = 3000, seed: int = 1, order: int = 4) -> Path:
    """A KenLM directory (`lm.bin`, `unigrams.txt`) from `sentences` template sentences."""
    from decoders.lm_build import build_lm

    corpus = directory / "corpus.txt"
    corpus.write_text("".join(s + "\n" for s in template_sentences(sentences, seed)))
    build_lm(corpus, directory, order=order, progress=False)
    return directory
