"""The log-mel front-end inside the graph equals an independent float64 numpy log-mel."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch

from models.frontend import FrontendConfig, LogMel

CFG = FrontendConfig()


def hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    log_part = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f < 1000.0, 3.0 * f / 200.0, log_part)


def mel_to_hz(m: np.ndarray) -> np.ndarray:
    return np.where(m < 15.0, 200.0 * m / 3.0, 1000.0 * np.exp((m - 15.0) * np.log(6.4) / 27.0))


def reference_filterbank(cfg: FrontendConfig) -> np.ndarray:
    """Triangular filters equally spaced in mel, area-normalised ("slaney"): [bins, mels]."""
    fft_hz = np.linspace(0.0, cfg.sample_rate / 2, cfg.n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(cfg.f_min), hz_to_mel(cfg.sample_rate / 2), cfg.n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising, falling = (fft_hz - lower) / (centre - lower), (upper - fft_hz) / (upper - centre)
    triangles = np.maximum(0.0, np.minimum(rising, falling))
    return (triangles * (2.0 / (upper - lower))).T


def reference_log_mel(audio: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """float64: pre-emphasis, causal framing (frame i ends at (i+1)*hop), Hann, rfft, mel, log."""
    x = np.concatenate([np.zeros(cfg.context_samples), audio.astype(np.float64)])
    y = x[1:] - cfg.preemphasis * x[:-1]
    n_frames = len(audio) // cfg.hop_length
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(cfg.win_length) / cfg.win_length)
    frames = np.stack([y[i * cfg.hop_length: i * cfg.hop_length + cfg.win_length] for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames * window, n=cfg.n_fft)) ** 2
    return np.log(power @ reference_filterbank(cfg) + cfg.log_guard)


def speech_like(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * CFG.sample_rate)) / CFG.sample_rate
    voiced = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 700, 1200, 2500), 1))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (0.2 * voiced * envelope + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def assert_matches_reference(features: np.ndarray, reference: np.ndarray) -> None:
    # compared in the power domain: |a - b| / b, i.e. exp of the log difference
    relative = np.abs(np.expm1(features.astype(np.float64) - reference))
    assert features.shape == reference.shape
    assert relative.max() <= 1e-4, f"max relative error {relative.max():.2e}"


def test_filterbank_is_slaney_mel():
    fb = LogMel(CFG).mel.double().numpy()
    assert np.abs(fb - reference_filterbank(CFG)).max() <= 1e-6 * np.abs(fb).max()


def test_torch_frontend_matches_float64_reference():
    audio = speech_like(1.3, seed=0)
    with torch.no_grad():
        features = LogMel(CFG)(torch.from_numpy(audio)[None])[0].numpy()
    assert_matches_reference(features, reference_log_mel(audio, CFG))


class _Step(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.frontend = LogMel(CFG)

    def forward(self, audio, context):
        return self.frontend.step(audio, context)


def test_exported_frontend_streams_like_the_reference(tmp_path):
    """The same module, exported to ONNX and fed 320 ms chunks with its context cache."""
    chunk = 32 * CFG.hop_length
    path = tmp_path / "frontend.onnx"
    example = (torch.zeros(1, chunk), torch.zeros(1, CFG.context_samples))
    torch.onnx.export(_Step().eval(), example, str(path), dynamo=False, opset_version=17,
                      input_names=["audio", "context"], output_names=["features", "new_context"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    audio = speech_like(5 * chunk / CFG.sample_rate, seed=1)
    context, parts = np.zeros((1, CFG.context_samples), np.float32), []
    for start in range(0, len(audio), chunk):
        features, context = session.run(None, {"audio": audio[None, start:start + chunk], "context": context})
        parts.append(features[0])
    assert_matches_reference(np.concatenate(parts), reference_log_mel(audio, CFG))
