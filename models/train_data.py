"""Training data for `models/train.py`: JSONL manifests, duration-bucketed batches, SpecAugment.

A manifest line is {"audio": path (relative to the manifest's folder, or absolute), "text": …,
"duration": seconds, …}: what `steno synth` writes. Batches are built per epoch from a seeded
shuffle, so (epoch, batch index) is a complete data position: resuming rebuilds the epoch's batch
list and starts at the saved index.
"""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from models.tokenizer import Tokenizer, normalize_text


def read_manifest(path: str | Path, max_seconds: float | None = None) -> list[dict]:
    """Items with an absolute `audio` path and normalised `text`; too long or empty ones dropped."""
    path = Path(path)
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a killed writer
        audio = Path(item["audio"])
        item["audio"] = str(audio if audio.is_absolute() else path.parent / audio)
        item["text"] = normalize_text(item["text"])
        if item["text"] and (max_seconds is None or item["duration"] <= max_seconds):
            items.append(item)
    return items


def make_batches(durations: list[float], max_batch_seconds: float, seed: int, epoch: int,
                 pool: int = 64) -> list[list[int]]:
    """Dynamic batches: shuffle, sort within pools of `pool` x typical batch, cut each pool into
    batches whose padded length (size x longest) stays under `max_batch_seconds`, shuffle batches."""
    rng = random.Random(f"{seed}:{epoch}")
    order = list(range(len(durations)))
    rng.shuffle(order)
    typical = max(1, int(max_batch_seconds / max(1e-3, float(np.mean(durations)) if durations else 1.0)))
    batches: list[list[int]] = []
    step = pool * typical
    for start in range(0, len(order), step):
        chunk = sorted(order[start:start + step], key=lambda i: durations[i])
        batch: list[int] = []
        for i in chunk:
            if batch and durations[i] * (len(batch) + 1) > max_batch_seconds:  # sorted: i is longest
                batches.append(batch)
                batch = []
            batch.append(i)
        if batch:
            batches.append(batch)
    rng.shuffle(batches)
    return batches


class ManifestDataset(torch.utils.data.Dataset):
    def __init__(self, items: list[dict], tokenizer: Tokenizer):
        self.items, self.tokenizer = items, tokenizer

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[np.ndarray, list[int], str]:
        item = self.items[i]
        audio, rate = sf.read(item["audio"], dtype="float32", always_2d=True)
        if rate != 16000:
            import soxr
            audio = soxr.resample(audio, rate, 16000)
        return audio.mean(axis=1), self.tokenizer.encode(item["text"]), item["text"]


def collate(samples: list[tuple[np.ndarray, list[int], str]]):
    """-> audio [B, N], audio lengths [B], targets (concatenated), target lengths [B], texts."""
    lengths = torch.tensor([len(a) for a, _, _ in samples])
    audio = torch.zeros(len(samples), int(lengths.max()))
    for i, (a, _, _) in enumerate(samples):
        audio[i, :len(a)] = torch.from_numpy(a)
    targets = torch.tensor([t for _, tokens, _ in samples for t in tokens], dtype=torch.long)
    target_lengths = torch.tensor([len(tokens) for _, tokens, _ in samples])
    return audio, lengths, targets, target_lengths, [text for _, _, text in samples]


def loader(dataset: ManifestDataset, batches: list[list[int]], workers: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches, collate_fn=collate, num_workers=workers,
                                       persistent_workers=False, prefetch_factor=4 if workers else None)


def spec_augment(feats: torch.Tensor, frame_lengths: torch.Tensor, freq_masks: int, freq_width: int,
                 time_masks_per_second: float, time_width: int, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
    """SpecAugment (no time warp) on log-mel [B, T, F]: masked cells take the utterance's mean.

    `frame_lengths` are in log-mel frames; time masks are spread over each utterance's real frames,
    `time_masks_per_second` of them (at 100 frames a second), each up to `time_width` frames.
    """
    b, t, f = feats.shape
    dev = feats.device
    mask = torch.zeros(b, t, f, dtype=torch.bool, device=dev)
    rand = lambda *shape: torch.rand(*shape, generator=generator).to(dev)
    freq_idx = torch.arange(f, device=dev)
    for _ in range(freq_masks):
        width = (rand(b) * (freq_width + 1)).long()
        start = (rand(b) * (f - width).clamp(min=1)).long()
        mask |= ((freq_idx[None] >= start[:, None]) & (freq_idx[None] < (start + width)[:, None]))[:, None, :]
    time_idx = torch.arange(t, device=dev)
    n_time = math.ceil(time_masks_per_second * t / 100.0)
    lengths = frame_lengths.to(dev).clamp(min=1)
    for _ in range(n_time):
        width = (rand(b) * (time_width + 1)).long()
        start = (rand(b) * (lengths - width).clamp(min=1)).long()
        mask |= ((time_idx[None] >= start[:, None]) & (time_idx[None] < (start + width)[:, None]))[:, :, None]
    mean = feats.mean(dim=(1, 2), keepdim=True)
    return torch.where(mask, mean.expand_as(feats), feats)


def frequency_warp(feats: torch.Tensor, max_warp: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Vocal tract length perturbation (after Jaitly & Hinton, 2013) on log-mel [B, T, F].

    Each utterance's spectrum is stretched or squeezed along the mel axis by a random factor in
    [1 - max_warp, 1 + max_warp] (linear interpolation between bins), so the few synthetic voices
    of the training set stand for many more vocal tracts. Mel bins, not Hz, are warped: an
    approximation that is close enough for augmentation.
    """
    if max_warp <= 0:
        return feats
    b, t, f = feats.shape
    dev = feats.device
    factor = 1 + (torch.rand(b, generator=generator).to(dev) * 2 - 1) * max_warp
    source = (torch.arange(f, device=dev)[None] / factor[:, None]).clamp(max=f - 1)  # [B, F]
    low = source.floor().long()
    high = (low + 1).clamp(max=f - 1)
    weight = (source - low)[:, None, :].to(feats.dtype)
    gather = lambda index: torch.gather(feats, 2, index[:, None, :].expand(b, t, f))
    return gather(low) * (1 - weight) + gather(high) * weight


def greedy_texts(log_probs: torch.Tensor, frame_lengths: torch.Tensor, tokenizer: Tokenizer) -> list[str]:
    best = log_probs.argmax(-1).cpu()
    texts = []
    for row, n in zip(best, frame_lengths.cpu().tolist()):
        ids = torch.unique_consecutive(row[:n]).tolist()
        texts.append(tokenizer.decode([i for i in ids if i != tokenizer.blank_id]))
    return texts
