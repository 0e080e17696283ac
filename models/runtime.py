"""Streaming encoder runtime: numpy + onnxruntime only (no torch), for the server.

Each stream owns its caches (`EncoderStream`); a call runs any set of streams, of any ages, as one
batch: their caches are stacked on the batch axis, the graph runs once, and the new caches are
handed back to each stream. Streams are plain objects, so adding or dropping one between calls is
just passing a different list.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from models.bundle import Bundle, BundleError

ORT_TYPES = {"float32": "tensor(float)", "int64": "tensor(int64)"}


@dataclass
class EncoderStream:
    caches: dict[str, np.ndarray]          # name -> array without the batch axis
    frames_emitted: int = 0


def session_options(threads: int, spinning: bool = False) -> ort.SessionOptions:
    """Worker threads spin after every call unless told not to, burning the cores that the decoder
    thread and the other sessions need (measured: `python -m bench.encoder_rtf`, paced rows)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return opts


def default_providers() -> list[str]:
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


class StreamingEncoder:
    """The bundle's encoder graph, stepped for a batch of streams at a time.

    On CPU with `threads` > 1, batches of up to `single_thread_batch` streams run on a second,
    one-thread session: for such small steps the hand-off to onnxruntime's worker costs more CPU
    than the second core saves (measured: `python -m bench.encoder_rtf`, threads rows), and a
    lightly loaded server makes only such steps.
    """

    def __init__(self, bundle: Bundle, precision: str = "fp32", threads: int = 2,
                 providers: list[str] | None = None, single_thread_batch: int = 8):
        self.bundle, self.config = bundle, bundle.config
        path = bundle.encoder_path(precision)
        providers = providers or default_providers()
        self.session = self._load(path, threads, providers)
        on_cpu_only = providers == ["CPUExecutionProvider"]
        self.small_session = self._load(path, 1, providers) if threads > 1 and on_cpu_only else self.session
        self.single_thread_batch = single_thread_batch
        self._check_graph(path)
        self._outputs = [self.config.log_probs_output] + [c.output for c in self.config.caches]

    @staticmethod
    def _load(path, threads: int, providers: list[str]) -> ort.InferenceSession:
        try:
            return ort.InferenceSession(str(path), session_options(threads), providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for unreadable graphs
            raise BundleError(f"{path}: onnxruntime cannot load it ({exc})") from None

    def _check_graph(self, path) -> None:
        cfg = self.config
        meta = self.session.get_modelmeta().custom_metadata_map
        for key in ("sample_rate", "chunk_samples", "vocab_size"):
            if key in meta and int(meta[key]) != getattr(cfg, key):
                raise BundleError(f"{self.bundle.path / 'config.json'}: {key}={getattr(cfg, key)} but "
                                  f"{path.name} was exported with {key}={meta[key]}")
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        expected_in = [(cfg.audio_input, (cfg.input_samples,), "float32")]
        expected_in += [(c.name, c.shape, c.dtype) for c in cfg.caches]
        expected_out = [(cfg.log_probs_output, (cfg.chunk_frames, cfg.vocab_size), "float32")]
        expected_out += [(c.output, c.shape, c.dtype) for c in cfg.caches]
        for kind, graph_args, expected in (("input", inputs, expected_in), ("output", outputs, expected_out)):
            for name, shape, dtype in expected:
                arg = graph_args.get(name)
                if arg is None:
                    raise BundleError(f"{path.name}: has no {kind} {name!r} named in config.json "
                                      f"(it has {sorted(graph_args)})")
                graph_shape = [d if isinstance(d, int) else None for d in arg.shape[1:]]
                shape_ok = len(graph_shape) == len(shape) and all(
                    g is None or g == want for g, want in zip(graph_shape, shape))  # None: symbolic
                if not shape_ok or arg.type != ORT_TYPES[dtype]:
                    raise BundleError(f"config.json: {kind} {name!r} is {dtype}{list(shape)} per stream, "
                                      f"but {path.name} has {arg.type}{graph_shape}")
        extra = set(inputs) - {name for name, _, _ in expected_in}
        if extra:
            raise BundleError(f"{path.name}: inputs {sorted(extra)} are not described in config.json")

    @property
    def chunk_samples(self) -> int:
        """New audio per step: a stream advances by this much."""
        return self.config.chunk_samples

    @property
    def input_samples(self) -> int:
        """Audio the graph reads per step: the chunk plus its right context (the next chunk's start)."""
        return self.config.input_samples

    def new_stream(self) -> EncoderStream:
        return EncoderStream({c.name: np.full(c.shape, c.init, dtype=c.dtype) for c in self.config.caches})

    def step(self, streams: Sequence[EncoderStream], chunks: np.ndarray) -> np.ndarray:
        """Run one chunk for each stream: chunks [B, input_samples] -> log-probs [B, frames, V].

        With a right context, a chunk is chunk_samples of new audio followed by the first
        right_context_samples of the next chunk (zeros past the end of the stream).
        """
        chunks = np.asarray(chunks, dtype=np.float32)
        if chunks.shape != (len(streams), self.input_samples):
            raise ValueError(f"expected chunks of shape ({len(streams)}, {self.input_samples}), "
                             f"got {chunks.shape}")
        if not streams:
            return np.zeros((0, self.config.chunk_frames, self.config.vocab_size), np.float32)
        feeds = {self.config.audio_input: chunks}
        for c in self.config.caches:
            feeds[c.name] = np.stack([s.caches[c.name] for s in streams])
        session = self.small_session if len(streams) <= self.single_thread_batch else self.session
        log_probs, *new_caches = session.run(self._outputs, feeds)
        for i, stream in enumerate(streams):
            for c, value in zip(self.config.caches, new_caches):
                stream.caches[c.name] = value[i]
            stream.frames_emitted += self.config.chunk_frames
        return log_probs

    def frames_for(self, n_samples: int) -> int:
        """Frames that carry real audio when a stream of n_samples ends (the rest is tail padding)."""
        return math.ceil(n_samples * self.config.chunk_frames / self.chunk_samples)

    def encode(self, audio: np.ndarray) -> np.ndarray:
        """A whole utterance through the streaming path, chunk by chunk: [T, V] for its real frames."""
        audio = np.asarray(audio, dtype=np.float32)
        tail = -len(audio) % self.chunk_samples + self.config.right_context_samples
        padded = np.pad(audio, (0, tail))
        stream, out = self.new_stream(), []
        for start in range(0, len(audio), self.chunk_samples):
            out.append(self.step([stream], padded[None, start:start + self.input_samples])[0])
        frames = np.concatenate(out) if out else np.zeros((0, self.config.vocab_size), np.float32)
        return frames[: self.frames_for(len(audio))]
