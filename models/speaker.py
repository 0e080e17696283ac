"""Speaker embeddings without torch: resemblyzer's GE2E encoder as ONNX + a numpy mel front-end.

`SpeakerEncoder.embed_many(clips)` turns 16 kHz float clips into L2-normed 256-d embeddings, the
way resemblyzer's `VoiceEncoder.embed_utterance` does: volume raised to -30 dBFS (never lowered),
40-band mel power frames (25 ms Hann window every 10 ms), 1.6 s partials every ~0.77 s (rate 1.3,
the last kept when 75 % covered, the clip zero-padded), one batched ONNX call for the partials of
every clip, then the normed mean of each clip's partials. Resemblyzer's webrtcvad silence trimming
is not done: the caller passes speech spans (a final segment, a window of one).

The ONNX file (`speaker_ge2e.onnx`, float16 weights, 2.9 MB) is exported once from the weights in
resemblyzer's PyPI wheel by `python -m models.speaker_export` and committed beside this file;
resemblyzer is Apache-2.0 (see speaker_ge2e.NOTICE).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

DEFAULT_MODEL = Path(__file__).with_name("speaker_ge2e.onnx")
SAMPLE_RATE = 16000
N_FFT, HOP, N_MELS = 400, 160, 40          # 25 ms window, 10 ms step
PARTIAL_FRAMES = 160                        # 1.6 s
PARTIAL_RATE, MIN_COVERAGE = 1.3, 0.75      # resemblyzer's embed_utterance defaults
TARGET_DBFS = -30.0
SILENCE_RMS = 10 ** (-80 / 20)              # quieter than -80 dBFS: no voice to embed
EMBEDDING_SIZE = 256


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, log above."""
    f = np.asarray(f, np.float64)
    mel = f / (200.0 / 3)
    log_part = f >= 1000.0
    return np.where(log_part, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mel)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m * (200.0 / 3))


def mel_filterbank(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] Slaney-normalised triangular filters, as librosa.filters.mel."""
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2.0), n_mels + 2))
    fdiff, ramps = np.diff(mel_f), mel_f[:, None] - fft_freqs[None, :]
    lower, upper = -ramps[:-2] / fdiff[:-1, None], ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return (weights * (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]).astype(np.float32)


_MEL = mel_filterbank()
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann


def mel_frames(wav: np.ndarray) -> np.ndarray:
    """[1 + len // 160, 40] mel power frames, as resemblyzer's wav_to_mel_spectrogram (librosa
    melspectrogram: centred frames with zero padding, power 2, Slaney mel)."""
    padded = np.pad(np.asarray(wav, np.float32), N_FFT // 2)
    n = 1 + (len(padded) - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:n]
    spectrum = np.fft.rfft(frames * _WINDOW, axis=1)
    power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)
    return power @ _MEL.T


def normalize_volume(wav: np.ndarray) -> np.ndarray:
    """Raise (never lower) the level to -30 dBFS, as resemblyzer's preprocess_wav."""
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if len(wav) else 0.0
    if rms <= SILENCE_RMS:
        return wav
    gain = 10 ** (TARGET_DBFS / 20) / rms
    return (wav * gain).astype(np.float32) if gain > 1 else wav


def partial_slices(n_samples: int) -> list[slice]:
    """Mel-frame slices of the 1.6 s partials of a clip (resemblyzer's compute_partial_slices)."""
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    step = int(np.round((SAMPLE_RATE / PARTIAL_RATE) / HOP))
    starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
    coverage = (n_samples - starts[-1] * HOP) / (PARTIAL_FRAMES * HOP)
    if coverage < MIN_COVERAGE and len(starts) > 1:
        starts.pop()
    return [slice(s, s + PARTIAL_FRAMES) for s in starts]


def clip_rms(wav: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if len(wav) else 0.0


class SpeakerEncoder:
    """One ONNX session per process; `embed_many` is thread-safe (onnxruntime's run is)."""

    sample_rate = SAMPLE_RATE
    embedding_size = EMBEDDING_SIZE

    def __init__(self, path: str | Path = DEFAULT_MODEL, threads: int = 1):
        import onnxruntime as ort

        from models.runtime import session_options

        self.path = Path(path)
        self.session = ort.InferenceSession(str(self.path), session_options(threads),
                                            providers=["CPUExecutionProvider"])

    def partial_mels(self, wav: np.ndarray) -> np.ndarray:
        """[n_partials, 160, 40] for one clip (volume-normalised, zero-padded)."""
        wav = normalize_volume(np.asarray(wav, np.float32))
        slices = partial_slices(len(wav))
        needed = slices[-1].stop * HOP
        if needed >= len(wav):
            wav = np.pad(wav, (0, needed - len(wav)))
        mel = mel_frames(wav)
        return np.stack([mel[s] for s in slices])

    def embed_partials(self, mels: np.ndarray) -> np.ndarray:
        """[batch, frames, 40] -> [batch, 256] L2-normed partial embeddings."""
        return self.session.run(None, {"mels": np.ascontiguousarray(mels, np.float32)})[0]

    def embed_many(self, clips: list[np.ndarray]) -> np.ndarray:
        """[len(clips), 256]: each clip's L2-normed mean partial embedding (one ONNX call)."""
        if not clips:
            return np.zeros((0, EMBEDDING_SIZE), np.float32)
        mels = [self.partial_mels(c) for c in clips]
        partials = self.embed_partials(np.concatenate(mels))
        bounds = np.cumsum([0] + [len(m) for m in mels])
        means = np.stack([partials[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])])
        return (means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def embed(self, wav: np.ndarray) -> np.ndarray:
        return self.embed_many([wav])[0]
