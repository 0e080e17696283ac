"""Word-level language models for shallow fusion, behind a small interface the beam search uses.

`LanguageModel` is what the beam search talks to: a start state, the natural-log probability of a
completed word given a state, the end-of-sentence probability, and two unigram-list checks (is the
word known, can a partial word still become a known word). `KenLMLanguageModel` is the real one over
a KenLM binary or ARPA file plus the unigram list written by `steno lm build`; tests plug in fakes.
"""
from __future__ import annotations

import abc
import bisect
import json
from collections.abc import Hashable, Iterable
from dataclasses import replace
from pathlib import Path

from decoders.options import LN10, DecoderOptions

LM_FILENAME = "lm.bin"
UNIGRAMS_FILENAME = "unigrams.txt"
FUSION_FILENAME = "fusion.json"  # {"alpha": …, "beta": …} tuned for this LM with one acoustic model
_CACHE_LIMIT = 200_000  # cached (state, word) lookups per model before the cache starts afresh


def tuned_fusion(directory: Path | str) -> dict[str, float]:
    """The alpha/beta stored beside an LM by `steno eval --tune` ({} when there are none).

    Fusion weights belong to an (acoustic model, LM) pair, so a bundle's lm/ directory carries
    them; a malformed file is an error rather than a silent fall-back to the defaults.
    """
    path = Path(directory) / FUSION_FILENAME
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {"alpha": float(data["alpha"]), "beta": float(data["beta"])}
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: expected {{\"alpha\": number, \"beta\": number}} ({exc})") from exc


def tuned_options(directory: Path | str, use_lm: bool = True, **overrides) -> DecoderOptions:
    """Decoder options with the alpha/beta tuned for the LM in `directory` (if any, and only when
    decoding `use_lm`, so a decoder without the LM never reads its file), then `overrides`."""
    return DecoderOptions(**{**(tuned_fusion(directory) if use_lm else {}), **overrides})


class LanguageModel(abc.ABC):
    """A word n-gram model. States are opaque, hashable and immutable."""

    def __init__(self, unigrams: Iterable[str]):
        self._sorted_unigrams = sorted(set(unigrams))
        self._unigrams = frozenset(self._sorted_unigrams)

    @abc.abstractmethod
    def start(self) -> Hashable:
        """The state at the beginning of a sentence."""

    @abc.abstractmethod
    def score(self, state: Hashable, word: str) -> tuple[float, Hashable]:
        """(ln P(word | state), state after the word)."""

    @abc.abstractmethod
    def end_score(self, state: Hashable) -> float:
        """ln P(end of sentence | state)."""

    def is_known(self, word: str) -> bool:
        """True if `word` is in the unigram list."""
        return word in self._unigrams

    def is_prefix(self, partial: str) -> bool:
        """True if some word of the unigram list starts with `partial`."""
        i = bisect.bisect_left(self._sorted_unigrams, partial)
        return i < len(self._sorted_unigrams) and self._sorted_unigrams[i].startswith(partial)


class KenLMLanguageModel(LanguageModel):
    """A KenLM model (binary or ARPA). Lookups are cached; one instance serves many streams."""

    def __init__(self, model_path: Path | str, unigrams: Iterable[str]):
        import kenlm

        self._kenlm = kenlm
        self._model = kenlm.Model(str(model_path))
        super().__init__(w for w in unigrams if w in self._model)
        if not self._unigrams:
            raise ValueError(f"none of the unigrams is in the language model {model_path}")
        self.order: int = self._model.order
        self._cache: dict[tuple[Hashable, str], tuple[float, Hashable]] = {}

    @classmethod
    def from_dir(cls, directory: Path | str) -> "KenLMLanguageModel":
        """Load `DIR/lm.bin` and `DIR/unigrams.txt` as written by `steno lm build`."""
        directory = Path(directory)
        unigrams = (directory / UNIGRAMS_FILENAME).read_text(encoding="utf-8").split()
        return cls(directory / LM_FILENAME, unigrams)

    def start(self) -> Hashable:
        state = self._kenlm.State()
        self._model.BeginSentenceWrite(state)
        return state

    def score(self, state: Hashable, word: str) -> tuple[float, Hashable]:
        key = (state, word)
        hit = self._cache.get(key)
        if hit is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            out = self._kenlm.State()
            hit = self._cache[key] = (self._model.BaseScore(state, word, out) * LN10, out)
        return hit

    def end_score(self, state: Hashable) -> float:
        return self._model.BaseScore(state, "</s>", self._kenlm.State()) * LN10


def bundle_fusion(lm_dir: Path, use_lm: bool, options: DecoderOptions | None,
                  frame_duration: float) -> tuple[KenLMLanguageModel | None, DecoderOptions]:
    """A bundle's LM (None when `use_lm` is off or the bundle has no lm/) and the decoder options
    for it: `options` if given, else the defaults with that LM's tuned alpha/beta; the frame
    duration is always the acoustic model's."""
    lm = KenLMLanguageModel.from_dir(lm_dir) if use_lm and Path(lm_dir).is_dir() else None
    chosen = options or tuned_options(lm_dir, use_lm=lm is not None)
    return lm, replace(chosen, frame_duration=frame_duration)
