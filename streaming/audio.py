"""Audio in: the one file reader and the one streaming resampler (soxr, high quality)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
import soxr


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Any file libsndfile reads (WAV, FLAC, OGG, ...) -> mono float32 samples and their rate."""
    samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return samples.mean(axis=1).astype(np.float32), int(rate)


class StreamResampler:
    """Resamples a stream piece by piece; the output equals resampling the whole at once."""

    def __init__(self, in_rate: int, out_rate: int):
        self.in_rate, self.out_rate = in_rate, out_rate
        self._stream = None if in_rate == out_rate else soxr.ResampleStream(
            in_rate, out_rate, 1, dtype="float32", quality="HQ")

    def process(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        if self._stream is None:
            return samples.astype(np.float32, copy=False)
        return self._stream.resample_chunk(samples.astype(np.float32, copy=False), last=last)

    def flush(self) -> np.ndarray:
        return self.process(np.zeros(0, np.float32), last=True)
