"""Train the test-fixture model: a tiny streaming conformer that reads "tone speech".

Each letter is a pure tone (its own frequency, 120 ms, 40 ms gap); a word break is 240 ms of
silence. The task is trivial, so a two-layer model learns it in a few CPU minutes, and the
server tests can then say "given this audio, the captions read 'hello world'" through the whole
real pipeline (front-end, encoder, beam search, endpointing) long before a speech model exists.

    python tests/make_tone_model.py            # writes tests/data/tone_model/
    python tests/make_tone_model.py --size default --steps 300 -o artifacts/tone_default
                                               # the shipped architecture (for bench/latency.py)
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from models.conformer import ConformerCTC, ConformerConfig
from models.export import export_bundle
from models.tokenizer import CharTokenizer

SAMPLE_RATE = 16000
LETTER_S, GAP_S, WORD_GAP_S = 0.12, 0.04, 0.24
WORDS = ("hello world steno captions meeting notes speech lecture stream batch model final partial "
         "speaker topic summary tone test audio quick brown fox jumps over lazy dog").split()
CONFIGS = {"tiny": ConformerConfig(d_model=64, n_layers=2, n_heads=4, ff_mult=2, conv_kernel=5,
                                   subsampling_channels=16, chunk_frames=4, left_chunks=4, dropout=0.0),
           "default": dataclasses.replace(ConformerConfig(), dropout=0.0)}
OUT = Path(__file__).parent / "data" / "tone_model"


def letter_frequency(letter: str) -> float:
    return 400.0 + 110.0 * (ord(letter) - ord("a")) if letter != "'" else 3400.0


def tone_speech(text: str, rng: np.random.Generator | None = None, lead_s: float = 0.3) -> np.ndarray:
    """Audio for lower-case text; with `rng`, random level, timing jitter and noise (training)."""
    parts = [np.zeros(int(lead_s * SAMPLE_RATE))]
    for w, word in enumerate(text.split()):
        if w:
            parts.append(np.zeros(int(WORD_GAP_S * SAMPLE_RATE)))
        for letter in word:
            dur = LETTER_S * (rng.uniform(0.8, 1.3) if rng else 1.0)
            t = np.arange(int(dur * SAMPLE_RATE)) / SAMPLE_RATE
            ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01)
            parts.append(0.3 * np.sin(2 * np.pi * letter_frequency(letter) * t) * ramp)
            parts.append(np.zeros(int(GAP_S * SAMPLE_RATE * (rng.uniform(0.8, 1.5) if rng else 1.0))))
    parts.append(np.zeros(int(lead_s * SAMPLE_RATE)))
    audio = np.concatenate(parts)
    if rng is not None:
        audio = audio * rng.uniform(0.3, 2.0) + rng.normal(0, rng.uniform(0, 0.01), len(audio))
    return audio.astype(np.float32)


def batch(rng: np.random.Generator, tokenizer: CharTokenizer, size: int = 16):
    texts = [" ".join(rng.choice(WORDS, rng.integers(1, 4))) for _ in range(size)]
    audio = [tone_speech(t, rng) for t in texts]
    lengths = torch.tensor([len(a) for a in audio])
    padded = torch.zeros(size, int(lengths.max()))
    for i, a in enumerate(audio):
        padded[i, :len(a)] = torch.from_numpy(a)
    targets = [torch.tensor(tokenizer.encode(t)) for t in texts]
    return padded, lengths, torch.cat(targets), torch.tensor([len(t) for t in targets]), texts


def main(steps: int, size: str, out: Path) -> None:
    torch.manual_seed(0)
    rng, tokenizer = np.random.default_rng(0), CharTokenizer()
    model = ConformerCTC(CONFIGS[size])
    lr = 2e-3 if size == "tiny" else 5e-4
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps)
    ctc = torch.nn.CTCLoss(blank=tokenizer.blank_id, zero_infinity=True)
    for step in range(1, steps + 1):
        audio, lengths, targets, target_lengths, texts = batch(rng, tokenizer)
        log_probs, frame_lengths = model(audio, lengths)
        loss = ctc(log_probs.transpose(0, 1), targets, frame_lengths, target_lengths)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        if step % 50 == 0:
            best = log_probs[0, : frame_lengths[0]].argmax(-1).tolist()
            greedy = [t for i, t in enumerate(best) if t != tokenizer.blank_id and (i == 0 or best[i - 1] != t)]
            print(f"step {step} loss {loss.item():.3f} | {texts[0]!r} -> {tokenizer.decode(greedy)!r}", flush=True)
    export_bundle(model.eval(), tokenizer, out, int8=size != "tiny")
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="train a tone-speech model")
    parser.add_argument("--size", choices=sorted(CONFIGS), default="tiny")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("-o", "--out", type=Path, default=OUT)
    args = parser.parse_args()
    main(args.steps, args.size, args.out)
