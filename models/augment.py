"""Waveform augmentation for synthetic training speech (numpy/scipy/soxr; 16 kHz float32 mono).

Each function takes the signal and a numpy Generator and returns a new signal of the same length
(except `speed`, which changes the duration on purpose), so a manifest's duration stays true:

    noise       white, pink or brown noise at 5-30 dB SNR
    reverb      a synthetic room: an impulse response of exponentially decaying noise (RT60 0.15-0.9 s)
    telephone   300-3400 Hz band-pass, 8 kHz round trip, mu-law 8-bit quantisation
    mix         another utterance underneath, 12-25 dB quieter (a distant talker)
    speed       resampling by 0.9-1.1 (tempo and pitch together, as Kaldi's speed perturbation)
    gain        a random level, peak kept below clipping
"""
from __future__ import annotations

import numpy as np
import soxr
from scipy import signal

SAMPLE_RATE = 16000


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def colored_noise(n: int, rng: np.random.Generator, color: str) -> np.ndarray:
    """White, pink (1/f) or brown (1/f^2) noise of unit RMS, shaped in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    exponent = {"white": 0.0, "pink": 0.5, "brown": 1.0}[color]
    noise = np.fft.irfft(spectrum / f ** exponent, n)
    return noise / rms(noise)


def noise(x: np.ndarray, rng: np.random.Generator, snr_db: tuple[float, float] = (5.0, 30.0)) -> np.ndarray:
    n = colored_noise(len(x), rng, str(rng.choice(["white", "pink", "brown"])))
    snr = rng.uniform(*snr_db)
    return (x + n * rms(x) / 10 ** (snr / 20)).astype(np.float32)


def impulse_response(rng: np.random.Generator, rt60: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Direct path, a few early reflections, then a decaying noise tail reaching -60 dB at rt60."""
    n = int(rt60 * rate)
    t = np.arange(n) / rate
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    tail[: int(0.003 * rate)] = 0.0
    ir = tail * rng.uniform(0.2, 0.6)
    ir[0] = 1.0
    for _ in range(rng.integers(2, 6)):  # early reflections
        ir[rng.integers(int(0.002 * rate), int(0.03 * rate))] += rng.uniform(0.2, 0.7) * rng.choice([-1, 1])
    return ir / np.sqrt(np.sum(ir ** 2))


def reverb(x: np.ndarray, rng: np.random.Generator, rt60: tuple[float, float] = (0.15, 0.9)) -> np.ndarray:
    wet = signal.fftconvolve(x, impulse_response(rng, rng.uniform(*rt60)))[: len(x)]
    return (wet * rms(x) / rms(wet)).astype(np.float32)


def telephone(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    sos = signal.butter(4, [300 + rng.uniform(-50, 50), 3400 + rng.uniform(-200, 100)], "bandpass",
                        fs=SAMPLE_RATE, output="sos")
    narrow = soxr.resample(signal.sosfilt(sos, x), SAMPLE_RATE, 8000)
    peak = max(np.max(np.abs(narrow)), 1e-6)
    mu = 255.0  # G.711-like companding to 8 bits and back
    companded = np.sign(narrow / peak) * np.log1p(mu * np.abs(narrow / peak)) / np.log1p(mu)
    expanded = np.sign(companded) * np.expm1(np.abs(np.round(companded * 127) / 127) * np.log1p(mu)) / mu
    wide = _fit(soxr.resample(expanded * peak, 8000, SAMPLE_RATE), len(x))
    return (wide * rms(x) / rms(wide)).astype(np.float32)


def mix(x: np.ndarray, other: np.ndarray, rng: np.random.Generator,
        level_db: tuple[float, float] = (12.0, 25.0)) -> np.ndarray:
    """`other` underneath `x`, `level_db` below it, starting anywhere (looped to cover x)."""
    if len(other) == 0 or rms(other) < 1e-6:
        return x
    reps = int(np.ceil(2 * len(x) / len(other))) + 1
    looped = np.tile(other, reps)
    start = int(rng.integers(0, len(looped) - len(x) + 1))
    under = looped[start:start + len(x)]
    return (x + under * rms(x) / rms(under) / 10 ** (rng.uniform(*level_db) / 20)).astype(np.float32)


def speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Faster by `factor` (> 1 shortens and raises pitch)."""
    return soxr.resample(x, SAMPLE_RATE * factor, SAMPLE_RATE).astype(np.float32)


def gain(x: np.ndarray, rng: np.random.Generator, peak_range: tuple[float, float] = (0.05, 0.95)) -> np.ndarray:
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak < 1e-6:
        return x.astype(np.float32)
    return (x * rng.uniform(*peak_range) / peak).astype(np.float32)


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    return x[:n] if len(x) >= n else np.pad(x, (0, n - len(x)))
