"""The streaming step of a NeMo cache-aware FastConformer as one torch module, ready for ONNX export.

NeMo streams features, not audio: its buffer (CacheAwareStreamingAudioBuffer) computes log-mels of
the whole signal with a centred STFT, then hands the encoder chunks of `shift` mel frames, each
preceded by a pre-encode cache of earlier mel frames. `NemoStreamingStep` reproduces that from raw
audio, one chunk at a time, with everything it needs to remember kept as cache tensors:

- `cache_audio`: the raw samples before the chunk that the first frames' windows (and the
  pre-emphasis) reach back to. All zeros at the start, which is exactly NeMo's constant centre padding.
- The chunk's last frames' windows reach past the chunk's end (a centred 25 ms window every 10 ms
  sees 15 ms ahead of its centre); those samples come in as the bundle's `right_context_samples`,
  appended to the chunk's audio and read again as new audio by the next step.
- `cache_mel`: the pre-encode cache, NeMo's last `pre_encode_cache_size` mel frames, zeros at the start
  (NeMo's `pad_and_drop_preencoded=True` first chunk); every step then drops the same
  `drop_extra_pre_encoded` subsampled frames, so the first step is shaped like all the others.
- NeMo's own encoder caches, batch-first (as NeMo's export wants them; its torch caches are layer-first).

The filterbank and window are the checkpoint's own buffers, so features match NeMo's to float rounding.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class FrontendSpec:
    """What the checkpoint's featurizer does, in samples and frames."""
    sample_rate: int
    n_fft: int
    win_length: int
    hop_length: int
    frame_offset: int        # sample at which frame 0's n_fft-long frame starts is -frame_offset
    preemph: float | None
    mag_power: float
    log_guard: float
    log_guard_type: str      # "add" or "clamp"
    magnitude_guard: float   # added under the square root (NeMo: 1e-5 when use_grads, else 0)

    @property
    def window_start(self) -> int:
        """Where the (non-zero) window begins inside an n_fft frame: torch.stft centres it."""
        return (self.n_fft - self.win_length) // 2

    @property
    def context_samples(self) -> int:
        """Raw samples before a chunk that its first frame needs (one more for pre-emphasis)."""
        return self.frame_offset - self.window_start + (1 if self.preemph else 0)

    def right_context_samples(self, frames: int) -> int:
        """Samples after a chunk of `frames` frames that its last frame's window still covers."""
        end = (frames - 1) * self.hop_length - self.frame_offset + self.window_start + self.win_length
        return max(0, end - frames * self.hop_length)


def featurizer_spec(featurizer) -> FrontendSpec:
    """Read a NeMo FilterbankFeatures module (its checks live in nemo_import.check_featurizer)."""
    from nemo.collections.asr.parts.preprocessing.features import CONSTANT

    guard = featurizer.log_zero_guard_value_fn(torch.zeros(1))
    offset = featurizer.stft_pad_amount if featurizer.exact_pad else featurizer.n_fft // 2
    return FrontendSpec(sample_rate=int(featurizer.sample_rate), n_fft=int(featurizer.n_fft),
                        win_length=int(featurizer.win_length), hop_length=int(featurizer.hop_length),
                        frame_offset=int(offset), preemph=featurizer.preemph,
                        mag_power=float(featurizer.mag_power), log_guard=float(guard),
                        log_guard_type=featurizer.log_zero_guard_type,
                        magnitude_guard=CONSTANT if featurizer.use_grads else 0.0)


class NemoLogMel(nn.Module):
    """Raw audio (with its left context) -> NeMo's log-mel frames [B, n_mels, frames]."""

    def __init__(self, featurizer, frames: int):
        super().__init__()
        spec = featurizer_spec(featurizer)
        self.spec, self.frames = spec, frames
        window = featurizer.window.detach().double().cpu().numpy()
        n_bins = spec.n_fft // 2 + 1
        t = np.arange(spec.win_length) + spec.window_start       # position inside the n_fft frame
        angle = 2.0 * np.pi * np.arange(n_bins)[:, None] * t[None, :] / spec.n_fft
        kernels = np.concatenate([np.cos(angle) * window, -np.sin(angle) * window])[:, None, :]
        self.register_buffer("dft", torch.tensor(kernels, dtype=torch.float32))
        self.register_buffer("fb", featurizer.fb.detach().float().cpu()[0].clone())  # [n_mels, n_bins]

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """`audio` starts spec.context_samples before the chunk and ends after its right context."""
        spec = self.spec
        if spec.preemph:
            audio = audio[:, 1:] - spec.preemph * audio[:, :-1]
        stft = nn.functional.conv1d(audio.unsqueeze(1), self.dft, stride=spec.hop_length)[:, :, : self.frames]
        n_bins = self.fb.shape[1]
        squared = stft[:, :n_bins] ** 2 + stft[:, n_bins:] ** 2
        magnitude = torch.sqrt(squared + spec.magnitude_guard if spec.magnitude_guard else squared)  # as NeMo
        power = magnitude.pow(spec.mag_power) if spec.mag_power != 1.0 else magnitude
        mel = torch.matmul(self.fb, power)                                      # [B, n_mels, frames]
        if spec.log_guard_type == "add":
            return torch.log(mel + spec.log_guard)
        return torch.log(torch.clamp(mel, min=spec.log_guard))


class NemoStreamingStep(nn.Module):
    """One chunk: audio [B, chunk + right context] and caches -> CTC log-probs [B, frames, V], caches.

    `model` is a NeMo ASR model prepared by nemo_import (streaming parameters set, export mode on,
    CTC decoder selected): its `forward_for_export` runs the encoder's cache-aware step and the CTC head.
    """

    def __init__(self, model, shift_frames: int, pre_encode_frames: int):
        super().__init__()
        self.model = model
        self.logmel = NemoLogMel(model.preprocessor.featurizer, shift_frames)
        self.chunk_samples = shift_frames * self.logmel.spec.hop_length
        self.pre_encode_frames = pre_encode_frames

    def forward(self, audio, cache_audio, cache_mel, cache_last_channel, cache_last_time, cache_last_channel_len):
        joined = torch.cat([cache_audio, audio], dim=1)
        mel = self.logmel(joined)
        features = torch.cat([cache_mel, mel], dim=2)
        length = torch.ones_like(cache_last_channel_len) * features.shape[2]
        log_probs, _, new_channel, new_time, new_channel_len = self.model.forward_for_export(
            audio_signal=features, length=length, cache_last_channel=cache_last_channel,
            cache_last_time=cache_last_time, cache_last_channel_len=cache_last_channel_len)
        context = cache_audio.shape[1]
        new_audio = joined[:, self.chunk_samples: self.chunk_samples + context]
        new_mel = features[:, :, features.shape[2] - self.pre_encode_frames:]
        return log_probs, new_audio, new_mel, new_channel, new_time, new_channel_len

