"""Streaming conformer-CTC: causal subsampling, chunked-limited attention with rotary positions,
causal depthwise convolution. Every layer takes a cache and returns the new one, so the full forward
(used for training) and the streaming step (exported to ONNX) run the same code.

Attention follows NeMo's "chunked_limited" convention: frames are grouped in chunks of
`chunk_frames`; a frame sees every frame of its own chunk (so its lookahead is the rest of the
chunk, up to chunk_frames - 1 frames) and the `left_chunks` chunks before it. The streaming step
keeps the keys/values of those left frames; rotary positions are relative, so cached keys are
stored unrotated and rotated by their place in the current window each step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from models.frontend import FrontendConfig, LogMel


@dataclass(frozen=True)
class ConformerConfig:
    vocab_size: int = 29
    d_model: int = 176
    n_layers: int = 12
    n_heads: int = 4
    ff_mult: int = 4
    conv_kernel: int = 15
    subsampling: int = 4             # 4 (characters) or 8 (word pieces)
    subsampling_channels: int = 128
    chunk_frames: int = 8            # encoder frames per streaming step
    left_chunks: int = 8             # attention left context, in chunks
    dropout: float = 0.1
    # log-mel -> (log-mel - mean) / std before the subsampling, fixed (so streaming is unaffected):
    # raw log-mels sit around -10.5 ± 4 on the training speech; the embedded model is fed them centred
    feature_mean: float = 0.0
    feature_std: float = 1.0
    frontend: FrontendConfig = field(default_factory=FrontendConfig)

    @property
    def left_frames(self) -> int:
        return self.chunk_frames * self.left_chunks

    @property
    def samples_per_frame(self) -> int:
        return self.frontend.hop_length * self.subsampling

    @property
    def chunk_samples(self) -> int:
        return self.chunk_frames * self.samples_per_frame


@dataclass(frozen=True)
class CacheSpec:
    """One streaming-state tensor; `shape` excludes the leading batch axis. Initial value is 0."""
    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"


class FeedForward(nn.Sequential):
    def __init__(self, d: int, mult: int, dropout: float):
        super().__init__(nn.LayerNorm(d), nn.Linear(d, mult * d), nn.SiLU(), nn.Dropout(dropout),
                         nn.Linear(mult * d, d), nn.Dropout(dropout))


def rotary_tables(n_positions: int, head_dim: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim))
    angles = torch.arange(n_positions, device=device).float()[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class ChunkedSelfAttention(nn.Module):
    """Multi-head self-attention written out by hand (exports with a dynamic batch axis)."""

    def __init__(self, d: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, d // n_heads
        self.norm = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.dropout = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.reshape(b, t, self.n_heads, self.head_dim).transpose(1, 2)

    def forward(self, x, k_cache, v_cache, mask, cos, sin):
        """x [B, T, d]; caches [B, S - T, d]; mask [B|1, 1, T|1, S]; cos/sin [S, head_dim]."""
        q, k, v = self.qkv(self.norm(x)).chunk(3, dim=-1)
        k_all, v_all = torch.cat([k_cache, k], dim=1), torch.cat([v_cache, v], dim=1)
        t = x.shape[1]
        q = apply_rotary(self._heads(q), cos[-t:], sin[-t:])
        keys = apply_rotary(self._heads(k_all), cos, sin)
        scores = torch.matmul(q, keys.transpose(-1, -2)) / math.sqrt(self.head_dim)
        weights = self.dropout(scores.masked_fill(~mask, -1e9).softmax(dim=-1))
        y = torch.matmul(weights, self._heads(v_all)).transpose(1, 2).reshape(x.shape)
        return self.dropout(self.out(y)), k_all, v_all


class CausalConvModule(nn.Module):
    def __init__(self, d: int, kernel: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.pointwise_in = nn.Linear(d, 2 * d)
        self.depthwise = nn.Conv1d(d, d, kernel, groups=d)
        self.conv_norm = nn.LayerNorm(d)
        self.pointwise_out = nn.Linear(d, d)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, d]; cache [B, d, kernel - 1] holds the previous depthwise inputs."""
        h = nn.functional.glu(self.pointwise_in(self.norm(x)), dim=-1).transpose(1, 2)
        h = torch.cat([cache, h], dim=2)
        new_cache = h[:, :, h.shape[2] - cache.shape[2]:]
        h = self.conv_norm(self.depthwise(h).transpose(1, 2))
        return self.dropout(self.pointwise_out(nn.functional.silu(h))), new_cache


class ConformerLayer(nn.Module):
    def __init__(self, cfg: ConformerConfig):
        super().__init__()
        d = cfg.d_model
        self.ff1 = FeedForward(d, cfg.ff_mult, cfg.dropout)
        self.attn = ChunkedSelfAttention(d, cfg.n_heads, cfg.dropout)
        self.conv = CausalConvModule(d, cfg.conv_kernel, cfg.dropout)
        self.ff2 = FeedForward(d, cfg.ff_mult, cfg.dropout)
        self.norm = nn.LayerNorm(d)

    def forward(self, x, k_cache, v_cache, conv_cache, mask, cos, sin):
        x = x + 0.5 * self.ff1(x)
        a, k_all, v_all = self.attn(x, k_cache, v_cache, mask, cos, sin)
        x = x + a
        c, conv_cache = self.conv(x, conv_cache)
        x = x + c
        x = self.norm(x + 0.5 * self.ff2(x))
        return x, k_all, v_all, conv_cache


class CausalSubsampling(nn.Module):
    """Stride-2 stages over (time, frequency): a full conv, then depthwise + pointwise ones.

    In time each stage is causal (output j sees inputs 2j-1..2j+1) and keeps its last input frame
    as a cache; frequency is padded symmetrically.
    """

    def __init__(self, n_mels: int, channels: int, d_model: int, factor: int):
        super().__init__()
        if factor not in (4, 8):
            raise ValueError(f"subsampling must be 4 or 8, got {factor}")
        stages: list[nn.Module] = [nn.Conv2d(1, channels, 3, stride=2, padding=(0, 1))]
        for _ in range(int(math.log2(factor)) - 1):
            stages.append(nn.Sequential(
                nn.Conv2d(channels, channels, 3, stride=2, padding=(0, 1), groups=channels),
                nn.Conv2d(channels, channels, 1)))
        self.stages = nn.ModuleList(stages)
        self.freq_sizes = [n_mels]
        for _ in stages:
            self.freq_sizes.append((self.freq_sizes[-1] - 1) // 2 + 1)
        self.out = nn.Linear(channels * self.freq_sizes[-1], d_model)

    def forward(self, feats: torch.Tensor, caches: list[torch.Tensor]):
        """feats [B, T, n_mels] (T a multiple of the factor) -> [B, T / factor, d_model]."""
        h, new_caches = feats.unsqueeze(1), []
        for stage, cache in zip(self.stages, caches):
            h = torch.cat([cache, h], dim=2)
            new_caches.append(h[:, :, -1:])
            h = torch.relu(stage(h))
        b, c, t, f = h.shape
        return self.out(h.transpose(1, 2).reshape(b, t, c * f)), new_caches


class ConformerCTC(nn.Module):
    def __init__(self, cfg: ConformerConfig):
        super().__init__()
        self.cfg = cfg
        self.frontend = LogMel(cfg.frontend)
        self.subsampling = CausalSubsampling(cfg.frontend.n_mels, cfg.subsampling_channels,
                                             cfg.d_model, cfg.subsampling)
        self.layers = nn.ModuleList(ConformerLayer(cfg) for _ in range(cfg.n_layers))
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)
        cos, sin = rotary_tables(cfg.left_frames + cfg.chunk_frames, cfg.d_model // cfg.n_heads)
        self.register_buffer("step_cos", cos, persistent=False)
        self.register_buffer("step_sin", sin, persistent=False)

    def cache_specs(self) -> list[CacheSpec]:
        cfg, sub = self.cfg, self.subsampling
        specs = [CacheSpec("cache_audio", (cfg.frontend.context_samples,))]
        specs += [CacheSpec(f"cache_sub{i}", (1 if i == 0 else cfg.subsampling_channels, 1, f))
                  for i, f in enumerate(sub.freq_sizes[:-1])]
        specs += [CacheSpec("cache_k", (cfg.n_layers, cfg.left_frames, cfg.d_model)),
                  CacheSpec("cache_v", (cfg.n_layers, cfg.left_frames, cfg.d_model)),
                  CacheSpec("cache_conv", (cfg.n_layers, cfg.d_model, cfg.conv_kernel - 1)),
                  CacheSpec("offset", (), "int64")]
        return specs

    def output_lengths(self, audio_lengths: torch.Tensor) -> torch.Tensor:
        return torch.div(audio_lengths + self.cfg.samples_per_frame - 1, self.cfg.samples_per_frame,
                         rounding_mode="floor")

    def chunk_mask(self, n_frames: int, lengths: torch.Tensor | None) -> torch.Tensor:
        """[B|1, 1, T, T]: query i sees key j when j's chunk is i's or one of the left_chunks before."""
        chunk = torch.arange(n_frames, device=self.head.weight.device) // self.cfg.chunk_frames
        behind = chunk[:, None] - chunk[None, :]
        mask = ((behind >= 0) & (behind <= self.cfg.left_chunks))[None]
        if lengths is not None:
            mask = mask & (torch.arange(n_frames, device=mask.device)[None, None, :] < lengths[:, None, None])
        return mask[:, None]

    def scale_features(self, feats: torch.Tensor) -> torch.Tensor:
        if self.cfg.feature_mean == 0.0 and self.cfg.feature_std == 1.0:
            return feats
        return (feats - self.cfg.feature_mean) / self.cfg.feature_std

    def encode(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Log-mel [B, T, n_mels] (T a multiple of subsampling) -> CTC log-probs [B, T / sub, V]."""
        b = feats.shape[0]
        feats = self.scale_features(feats)
        zeros = [feats.new_zeros(b, *spec.shape) for spec in self.cache_specs()[1:-4]]
        x, _ = self.subsampling(feats, zeros)
        cos, sin = rotary_tables(x.shape[1], self.cfg.d_model // self.cfg.n_heads, x.device)
        mask, empty = self.chunk_mask(x.shape[1], lengths), x.new_zeros(b, 0, self.cfg.d_model)
        conv_cache = x.new_zeros(b, self.cfg.d_model, self.cfg.conv_kernel - 1)
        for layer in self.layers:
            x, _, _, _ = layer(x, empty, empty, conv_cache, mask, cos, sin)
        return self.head(x).log_softmax(dim=-1)

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor | None = None):
        """Whole utterances [B, N] -> (log-probs [B, T, V], frame lengths [B]).

        Audio is zero-padded to a whole number of chunks, as the streaming runtime pads its last one.
        With `lengths` (a padded training batch) keys past each length are masked; without, the
        padding is attended to exactly as the stream's zero-padded last chunk is.
        """
        pad = -audio.shape[1] % self.cfg.chunk_samples
        padded = nn.functional.pad(audio, (0, pad))
        frame_lengths = None if lengths is None else self.output_lengths(lengths)
        log_probs = self.encode(self.frontend(padded), frame_lengths)
        if frame_lengths is None:
            frame_lengths = self.output_lengths(torch.full((audio.shape[0],), audio.shape[1]))
        return log_probs, frame_lengths

    def step(self, audio: torch.Tensor, *caches: torch.Tensor):
        """One chunk [B, chunk_samples] and the caches in `cache_specs()` order ->
        (log-probs [B, chunk_frames, V], *new caches in the same order)."""
        cfg, n_sub = self.cfg, len(self.subsampling.stages)
        cache_audio, sub_caches = caches[0], list(caches[1:1 + n_sub])
        cache_k, cache_v, cache_conv, offset = caches[1 + n_sub:]
        feats, new_audio = self.frontend.step(audio, cache_audio)
        x, new_sub = self.subsampling(self.scale_features(feats), sub_caches)
        left = cfg.left_frames
        valid = torch.clamp(offset, max=left)
        cache_ok = torch.arange(left, device=x.device)[None, :] >= (left - valid)[:, None]
        mask = torch.cat([cache_ok, torch.ones_like(cache_ok[:, :1]).expand(-1, x.shape[1])], dim=1)
        mask = mask[:, None, None, :]
        new_k, new_v, new_conv = [], [], []
        for i, layer in enumerate(self.layers):
            x, k_all, v_all, conv = layer(x, cache_k[:, i], cache_v[:, i], cache_conv[:, i], mask,
                                          self.step_cos, self.step_sin)
            new_k.append(k_all[:, -left:])
            new_v.append(v_all[:, -left:])
            new_conv.append(conv)
        log_probs = self.head(x).log_softmax(dim=-1)
        return (log_probs, new_audio, *new_sub, torch.stack(new_k, 1), torch.stack(new_v, 1),
                torch.stack(new_conv, 1), offset + x.shape[1])
