"""Log-mel front-end as a torch module, so the exported graph takes raw 16 kHz float PCM.

Causal framing: frame i ends at sample (i + 1) * hop, so a chunk of k * hop samples gives exactly k
frames once the previous `context_samples` raw samples are known (window - hop for the overlap, plus
one for pre-emphasis). The streaming step keeps those samples as a cache; the full forward pads the
start with the same zeros, so both paths compute identical features.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class FrontendConfig:
    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400          # 25 ms
    hop_length: int = 160          # 10 ms
    n_mels: int = 80
    preemphasis: float = 0.97
    f_min: float = 0.0
    f_max: float | None = None     # None: Nyquist
    log_guard: float = 2.0 ** -24  # added before the log, as NeMo does

    @property
    def context_samples(self) -> int:
        return self.win_length - self.hop_length + 1


def mel_filterbank(cfg: FrontendConfig) -> np.ndarray:
    """[n_fft // 2 + 1, n_mels] Slaney-normalised mel filters (librosa's, which NeMo also uses)."""
    import librosa

    fb = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels,
                             fmin=cfg.f_min, fmax=cfg.f_max, norm="slaney", htk=False)
    return fb.T.astype(np.float64)


def dft_kernels(cfg: FrontendConfig) -> np.ndarray:
    """[2 * n_bins, 1, win_length] windowed cos/sin rows: a strided conv1d with them is the STFT.

    The Hann window (periodic, of win_length) is centred in n_fft as torch.stft does; only the
    win_length samples under the window matter, so the kernel is that long.
    """
    n_bins = cfg.n_fft // 2 + 1
    window = np.hanning(cfg.win_length + 1)[:-1]
    start = (cfg.n_fft - cfg.win_length) // 2
    t = np.arange(cfg.win_length) + start
    k = np.arange(n_bins)[:, None]
    angle = 2.0 * np.pi * k * t[None, :] / cfg.n_fft
    kernels = np.concatenate([np.cos(angle) * window, -np.sin(angle) * window], axis=0)
    return kernels[:, None, :]


class LogMel(nn.Module):
    """Raw PCM [B, N] -> log-mel [B, N // hop, n_mels]."""

    def __init__(self, cfg: FrontendConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("dft", torch.tensor(dft_kernels(cfg), dtype=torch.float32))
        self.register_buffer("mel", torch.tensor(mel_filterbank(cfg), dtype=torch.float32))

    def _features(self, padded: torch.Tensor) -> torch.Tensor:
        """`padded` starts with context_samples of earlier audio (or zeros)."""
        emphasised = padded[:, 1:] - self.cfg.preemphasis * padded[:, :-1]
        spec = nn.functional.conv1d(emphasised.unsqueeze(1), self.dft, stride=self.cfg.hop_length)
        n_bins = self.mel.shape[0]
        power = spec[:, :n_bins] ** 2 + spec[:, n_bins:] ** 2              # [B, bins, T]
        mel = torch.matmul(power.transpose(1, 2), self.mel)                 # [B, T, mels]
        return torch.log(mel + self.cfg.log_guard)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        pad = audio.new_zeros(audio.shape[0], self.cfg.context_samples)
        return self._features(torch.cat([pad, audio], dim=1))

    def step(self, audio: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One chunk with the previous `context_samples` samples; returns features and new context."""
        joined = torch.cat([context, audio], dim=1)
        return self._features(joined), joined[:, -self.cfg.context_samples:]
