"""The model bundle: a self-describing directory, the contract between models/ and the rest.

    encoder.onnx        streaming step: PCM chunk + caches -> CTC log-probs + new caches
    encoder.int8.onnx   optional dynamically quantised variant
    config.json         rates, chunk sizes, caches, blank id, tokenizer kind (BundleConfig below)
    tokens.txt          "<token> <id>" per line
    tokenizer.model     sentencepiece model, when tokenizer == "sentencepiece"

`load_bundle` checks files and config; the runtime checks the ONNX graph against the config when it
opens it. Every problem is a `BundleError` naming the file and what is wrong.
"""
from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass
from pathlib import Path

from models.tokenizer import CharTokenizer, SentencePieceTokenizer, Tokenizer, read_tokens

FORMAT_VERSION = 1
SUPPORTED_SAMPLE_RATES = (8000, 16000)
TOKENIZER_KINDS = ("characters", "sentencepiece")
DTYPES = ("float32", "int64")


class BundleError(ValueError):
    """A model bundle is missing a file or is inconsistent."""


@dataclass(frozen=True)
class CacheConfig:
    name: str            # graph input
    output: str          # graph output carrying the updated value
    shape: tuple[int, ...]  # without the batch axis
    dtype: str = "float32"
    init: float = 0.0


@dataclass(frozen=True)
class BundleConfig:
    model_family: str
    sample_rate: int
    chunk_samples: int       # audio consumed and required per step
    chunk_frames: int        # log-prob frames emitted per step
    lookahead_frames: int    # right context a frame sees inside its chunk (latency, informational)
    left_context_frames: int
    frame_duration: float    # seconds per log-prob frame
    subsampling: int
    blank_id: int
    vocab_size: int
    tokenizer: str
    caches: tuple[CacheConfig, ...]
    audio_input: str = "audio"
    log_probs_output: str = "log_probs"
    format_version: int = FORMAT_VERSION
    # Audio after the chunk that the graph also reads (e.g. the tail of a centred STFT window): the
    # audio input is chunk_samples + right_context_samples long, and the next step's chunk starts at
    # the right context's first sample, so every sample is read once as new audio.
    right_context_samples: int = 0

    @property
    def input_samples(self) -> int:
        return self.chunk_samples + self.right_context_samples

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, raw: dict, source: str = "config.json") -> "BundleConfig":
        fields = cls.__dataclass_fields__
        missing = [k for k, f in fields.items() if k not in raw and f.default is MISSING]
        if missing:
            raise BundleError(f"{source}: missing keys {missing}")
        unknown = sorted(set(raw) - set(fields))
        if unknown:
            raise BundleError(f"{source}: unknown keys {unknown}")
        try:
            caches = tuple(CacheConfig(**{**c, "shape": tuple(c["shape"])}) for c in raw["caches"])
        except (TypeError, KeyError) as exc:
            raise BundleError(f"{source}: bad 'caches' entry ({exc})") from None
        cfg = cls(**{**raw, "caches": caches})
        cfg.validate(source)
        return cfg

    def validate(self, source: str = "config.json") -> None:
        def fail(msg: str) -> None:
            raise BundleError(f"{source}: {msg}")

        if self.format_version != FORMAT_VERSION:
            fail(f"format_version {self.format_version} is not supported (expected {FORMAT_VERSION})")
        if self.sample_rate not in SUPPORTED_SAMPLE_RATES:
            fail(f"sample_rate {self.sample_rate} is not one of {SUPPORTED_SAMPLE_RATES}")
        if self.tokenizer not in TOKENIZER_KINDS:
            fail(f"tokenizer {self.tokenizer!r} is not one of {TOKENIZER_KINDS}")
        for name in ("chunk_samples", "chunk_frames", "subsampling", "vocab_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                fail(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not isinstance(self.right_context_samples, int) or self.right_context_samples < 0:
            fail(f"right_context_samples must be a non-negative integer, got {self.right_context_samples!r}")
        if not 0 <= self.blank_id < self.vocab_size:
            fail(f"blank_id {self.blank_id} outside the vocabulary of {self.vocab_size}")
        implied = self.chunk_frames * self.frame_duration * self.sample_rate
        if abs(implied - self.chunk_samples) > 0.5:
            fail(f"chunk_samples {self.chunk_samples} disagrees with chunk_frames x frame_duration x "
                 f"sample_rate = {self.chunk_frames} x {self.frame_duration} x {self.sample_rate}")
        names = [self.audio_input, self.log_probs_output]
        for c in self.caches:
            if c.dtype not in DTYPES:
                fail(f"cache {c.name!r} has dtype {c.dtype!r}, expected one of {DTYPES}")
            if any(not isinstance(d, int) or d < 0 for d in c.shape):
                fail(f"cache {c.name!r} has a bad shape {list(c.shape)}")
            names += [c.name, c.output]
        if len(set(names)) != len(names):
            fail("graph input/output names are not unique")


@dataclass(frozen=True)
class Bundle:
    path: Path
    config: BundleConfig
    tokenizer: Tokenizer

    def encoder_path(self, precision: str = "fp32") -> Path:
        name = {"fp32": "encoder.onnx", "int8": "encoder.int8.onnx"}.get(precision)
        if name is None:
            raise BundleError(f"precision must be 'fp32' or 'int8', got {precision!r}")
        path = self.path / name
        if not path.is_file():
            raise BundleError(f"{path}: missing ({precision} encoder not in this bundle)")
        return path


def load_bundle(path: str | Path) -> Bundle:
    """Read and check a bundle directory (the ONNX graph itself is checked by the runtime)."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"{path}: not a model bundle directory")
    for name in ("config.json", "encoder.onnx", "tokens.txt"):
        if not (path / name).is_file():
            raise BundleError(f"{path / name}: missing (a bundle needs config.json, encoder.onnx, tokens.txt)")
    try:
        raw = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path / 'config.json'}: not valid JSON ({exc})") from None
    config = BundleConfig.from_dict(raw, str(path / "config.json"))
    try:
        tokens = read_tokens(path / "tokens.txt")
    except ValueError as exc:
        raise BundleError(str(exc)) from None
    if len(tokens) != config.vocab_size:
        raise BundleError(f"{path / 'tokens.txt'}: {len(tokens)} tokens, config.json says vocab_size "
                          f"{config.vocab_size}")
    if config.tokenizer == "sentencepiece":
        model = path / "tokenizer.model"
        if not model.is_file():
            raise BundleError(f"{model}: missing (config.json says tokenizer is sentencepiece)")
        tokenizer: Tokenizer = SentencePieceTokenizer(model, config.blank_id)
        if tokenizer.tokens != tokens:
            raise BundleError(f"{path / 'tokens.txt'}: does not match tokenizer.model's pieces")
    else:
        try:
            tokenizer = CharTokenizer(tokens, config.blank_id)
        except ValueError as exc:
            raise BundleError(f"{path / 'tokens.txt'}: {exc}") from None
    return Bundle(path, config, tokenizer)
