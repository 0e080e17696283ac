"""Train the streaming conformer-CTC on synthetic speech manifests, then export the bundle + LM.

Readable top to bottom (after nanoGPT's train.py): the config, the model, the data, the loop,
checkpoints, export. Any config field can be overridden on the command line:

    python -m models.train --train_manifest D/train.jsonl --valid_manifest D/valid.jsonl \
        --out_dir artifacts/train --max_minutes 9          # resumes from out_dir/ckpt.pt if present

Each invocation runs until max_steps or max_minutes, writing out_dir/ckpt.pt (model, optimiser,
step, data position, RNG states; the learning rate is a pure function of the step) every
ckpt_every steps and at the end, so a sequence of 10-minute commands continues one run. When
max_steps is reached the model is exported to bundle_dir with the LM built from lm_text (training
text only) in bundle_dir/lm. `--weights_out DIR` also writes the weights as <=15 MiB shards (what a
device machine can hand back), and `--init_from DIR|FILE` starts from such weights or from a bundle.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.conformer import ConformerConfig, ConformerCTC
from models.tokenizer import CharTokenizer
from models.train_data import (
    ManifestDataset,
    frequency_warp,
    greedy_texts,
    loader,
    make_batches,
    read_manifest,
    spec_augment,
)


@dataclass
class TrainConfig:
    # data
    train_manifest: str = "/work/data/steno/synth/train.jsonl"
    valid_manifest: str = "/work/data/steno/synth/valid.jsonl"
    lm_text: str = "/work/data/steno/corpus/lm_train.txt"
    out_dir: str = "artifacts/train"
    bundle_dir: str = "artifacts/bundle"
    max_item_seconds: float = 16.0
    max_batch_seconds: float = 400.0   # padded audio seconds per batch (dynamic batching)
    workers: int = 4                   # data-loading processes
    # model: a preset of MODELS below, optionally resized
    model: str = "default"
    # optimisation
    lr: float = 2e-3
    min_lr: float = 1e-4
    weight_decay: float = 1e-3
    warmup_steps: int = 800
    max_steps: int = 12000
    grad_clip: float = 1.0
    amp: bool = True                   # bf16 autocast on CUDA, and on CPUs with AVX512-BF16 (~1.7x faster here)
    # SpecAugment
    freq_masks: int = 2
    freq_width: int = 20
    time_masks_per_second: float = 0.8
    time_width: int = 40
    freq_warp: float = 0.0             # vocal tract length perturbation: max relative mel-axis stretch
    # bookkeeping
    eval_every: int = 1000
    eval_items: int = 300
    ckpt_every: int = 250
    keep_every: int = 0                # also keep the weights every N steps (out_dir/weights-STEP.pt), for models.average
    log_every: int = 50
    max_minutes: float = 0.0           # stop (after a checkpoint) when this much time has passed; 0: none
    seed: int = 0
    device: str = "auto"
    init_from: str = ""                # weights (.pt, shard dir or bundle) to start a new run from
    weights_out: str = ""              # also write the weights as shards here
    export: bool = True                # export bundle + LM when max_steps is reached
    export_int8: bool = False          # the int8 variant (adds ~10 MB to the bundle)
    lm_order: int = 5
    lm_prune: str = "0 0 1 1"          # lmplz pruning counts per order ("" for none)


MODELS = {
    "default": ConformerConfig(),                                       # 9.1 M parameters
    "small": ConformerConfig(d_model=144, n_layers=10, subsampling_channels=96),        # 5.1 M
    # The embedded default model. Depth, not width, decided whether CPU training left CTC's blank
    # plateau in time: 10 layers stayed on it for 1 800 steps (two runs), 6 layers for 1 300; 4
    # layers left it after ~600 steps of 40 s batches. Overfitting 6 utterances, loss after 45 steps
    # was 2.50 with 10 layers, 1.26 with 6, 0.82 with 4 (bf16, 2 cores).
    "embedded": ConformerConfig(d_model=144, n_layers=4, subsampling_channels=96,
                                feature_mean=-10.5, feature_std=4.0),
    "tiny": ConformerConfig(d_model=64, n_layers=2, n_heads=4, ff_mult=2, conv_kernel=5,
                            subsampling_channels=16, chunk_frames=4, left_chunks=4, dropout=0.0),
}


def _bool(text: str) -> bool:
    return text.lower() in ("1", "true", "yes", "on")


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    types = {"str": str, "int": int, "float": float, "bool": _bool}
    for f in dataclasses.fields(TrainConfig):
        parser.add_argument(f"--{f.name}", type=types[f.type], default=f.default, metavar=f.type.upper())
    return TrainConfig(**vars(parser.parse_args(argv)))


def lr_at(step: int, cfg: TrainConfig, warmup_from: int = 0) -> float:
    """Cosine decay from lr to min_lr at max_steps, under a linear warm-up of warmup_steps from step 0
    or, after `--init_from` (a fresh optimiser), from that step (`warmup_from`) up to the schedule."""
    progress = min(1.0, step / max(1, cfg.max_steps))
    scheduled = cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))
    return scheduled * min(1.0, (step - warmup_from + 1) / cfg.warmup_steps)


def ctc_forward(model: ConformerCTC, audio, lengths, cfg: TrainConfig, augment: bool, generator=None):
    """model.forward with SpecAugment between the front-end and the encoder."""
    pad = -audio.shape[1] % model.cfg.chunk_samples
    feats = model.frontend(torch.nn.functional.pad(audio, (0, pad)))
    frame_lengths = model.output_lengths(lengths)
    if augment:
        feats = frequency_warp(feats, cfg.freq_warp, generator)
        feats = spec_augment(feats, lengths // model.cfg.frontend.hop_length, cfg.freq_masks, cfg.freq_width,
                             cfg.time_masks_per_second, cfg.time_width, generator)
    return model.encode(feats, frame_lengths), frame_lengths


@torch.no_grad()
def validate(model, items, tokenizer, cfg: TrainConfig, device) -> dict:
    import jiwer

    model.eval()
    dataset = ManifestDataset(items, tokenizer)
    batches = make_batches([it["duration"] for it in items], cfg.max_batch_seconds, 0, 0)
    refs, hyps, loss_sum = [], [], 0.0
    for audio, lengths, targets, target_lengths, texts in loader(dataset, batches, min(cfg.workers, 2)):
        log_probs, frame_lengths = ctc_forward(model, audio.to(device), lengths.to(device), cfg, False)
        loss_sum += len(texts) * torch.nn.functional.ctc_loss(  # the training loss's normalisation
            log_probs.float().transpose(0, 1), targets, frame_lengths.cpu(), target_lengths, zero_infinity=True).item()
        hyps += greedy_texts(log_probs.float(), frame_lengths, tokenizer)
        refs += texts
    model.train()
    return {"wer": jiwer.wer(refs, hyps), "cer": jiwer.cer(refs, hyps), "loss": loss_sum / max(1, len(refs)),
            "example": (refs[0], hyps[0]) if refs else None}


def numpy_rng_state() -> tuple:
    """numpy's RNG state with its key as a list: a checkpoint holding no numpy objects loads with
    torch.load(weights_only=True), so `steno export` takes it as it is."""
    name, key, *rest = np.random.get_state()
    return (name, key.tolist(), *rest)


def save_checkpoint(path: Path, model, optimiser, cfg: TrainConfig, state: dict) -> None:
    ckpt = {"config": dataclasses.asdict(model.cfg), "model": model.state_dict(), "optimiser": optimiser.state_dict(),
            "train_config": dataclasses.asdict(cfg), **state,
            "rng": {"python": random.getstate(), "numpy": numpy_rng_state(), "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}}
    tmp = path.with_suffix(".tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)  # a kill mid-write never leaves a broken checkpoint


def save_weights(path: Path, state: dict, config: dict, step: int) -> None:
    """The weights alone ({"model", "config", "step"}), as load_weights (so --init_from, models.grow,
    models.average) and `steno export` read them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"model": state, "config": config, "step": step}, tmp)
    os.replace(tmp, path)


def save_weight_shards(model: ConformerCTC, directory: Path, step: int, max_bytes: int = 15 << 20) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    shards, current, size = [], {}, 0
    for name, tensor in model.state_dict().items():
        nbytes = tensor.numel() * tensor.element_size()
        if current and size + nbytes > max_bytes:
            shards.append(current)
            current, size = {}, 0
        current[name], size = tensor.cpu(), size + nbytes
    shards.append(current)
    for i, shard in enumerate(shards):
        torch.save(shard, directory / f"weights-{i:02d}.pt")
    meta = {"config": dataclasses.asdict(model.cfg), "step": step, "shards": len(shards)}
    (directory / "weights.json").write_text(json.dumps(meta, indent=1))


def load_weights(path: Path) -> tuple[dict, dict, int]:
    """(state_dict, model config dict, step) from a checkpoint file, a shard directory or a bundle (whose
    weights carry no step: a run from one starts its schedule at 0, a fine-tune)."""
    if (path / "encoder.onnx").exists():
        from models.bundle_weights import weights_from_bundle

        return (*weights_from_bundle(path), 0)
    if path.is_dir():
        meta = json.loads((path / "weights.json").read_text())
        state = {}
        for i in range(meta["shards"]):
            state.update(torch.load(path / f"weights-{i:02d}.pt", map_location="cpu", weights_only=True))
        return state, meta["config"], meta["step"]
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return ckpt["model"], ckpt["config"], ckpt.get("step", 0)


def export(model: ConformerCTC, tokenizer, cfg: TrainConfig) -> Path:
    from models.export import export_bundle

    bundle = export_bundle(model.cpu().eval(), tokenizer, cfg.bundle_dir, int8=cfg.export_int8)
    try:
        from decoders.lm_build import build_lm

        prune = [int(c) for c in cfg.lm_prune.split()] or None
        build_lm(Path(cfg.lm_text), bundle / "lm", order=cfg.lm_order, prune=prune)
    except (FileNotFoundError, ImportError) as exc:  # no KenLM tools here: the bundle works without lm/
        print(f"LM not built ({exc}); build it with: steno lm build {cfg.lm_text} -o {bundle / 'lm'}")
    return bundle


def main(cfg: TrainConfig) -> dict:
    started = time.time()
    device = torch.device(cfg.device if cfg.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu")
    amp = cfg.amp and (device.type == "cuda" or torch.cpu._is_avx512_bf16_supported())
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / "ckpt.pt"
    tokenizer = CharTokenizer()
    random.seed(cfg.seed), np.random.seed(cfg.seed), torch.manual_seed(cfg.seed)

    # -- model and optimiser (fresh, from weights, or resumed) --
    model_cfg = dataclasses.replace(MODELS[cfg.model], vocab_size=len(tokenizer.tokens))
    state = {"step": 0, "epoch": 0, "batch": 0, "warmup_from": 0, "best_wer": None, "history": []}
    resume = torch.load(ckpt_path, map_location="cpu", weights_only=False) if ckpt_path.exists() else None
    if resume is None and cfg.init_from:
        weights, raw_cfg, step = load_weights(Path(cfg.init_from))
        from models.export import config_from_dict
        model_cfg = config_from_dict(raw_cfg)
        state.update(step=step, warmup_from=step)  # a fresh optimiser: warm up again from here
    elif resume is not None:
        from models.export import config_from_dict
        model_cfg = config_from_dict(resume["config"])
    model = ConformerCTC(model_cfg).to(device)
    if resume is None and cfg.init_from:
        model.load_state_dict(weights)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimiser = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98))
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimiser.load_state_dict(resume["optimiser"])
        state.update({k: resume[k] for k in state if k in resume})
        random.setstate(resume["rng"]["python"]), np.random.set_state(resume["rng"]["numpy"])
        torch.set_rng_state(resume["rng"]["torch"])
        if device.type == "cuda" and resume["rng"]["cuda"]:
            torch.cuda.set_rng_state_all(resume["rng"]["cuda"])
        print(f"resumed from {ckpt_path} at step {state['step']} (epoch {state['epoch']}, batch {state['batch']})")
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model {cfg.model}: {n_params / 1e6:.2f} M parameters on {device}{' (bf16 autocast)' if amp else ''}")

    # -- data --
    more = state["step"] < cfg.max_steps  # else: only the export is left to do
    train_items = read_manifest(cfg.train_manifest, cfg.max_item_seconds) if more else []
    valid_items = read_manifest(cfg.valid_manifest, cfg.max_item_seconds)[: cfg.eval_items] \
        if more and cfg.valid_manifest and Path(cfg.valid_manifest).exists() else []
    dataset = ManifestDataset(train_items, tokenizer)
    durations = [it["duration"] for it in train_items]
    print(f"train: {len(train_items)} items, {sum(durations) / 3600:.2f} h; valid: {len(valid_items)} items")

    # -- the loop --
    from tqdm import tqdm

    model.train()
    generator = torch.Generator()  # SpecAugment's masks, re-seeded per step: resuming draws the same
    bar = tqdm(total=cfg.max_steps, initial=state["step"], desc="train", unit="step")
    last_loss, stop = float("nan"), False
    while state["step"] < cfg.max_steps and not stop:
        batches = make_batches(durations, cfg.max_batch_seconds, cfg.seed, state["epoch"])
        for audio, lengths, targets, target_lengths, _ in loader(dataset, batches[state["batch"]:], cfg.workers):
            step = state["step"]
            generator.manual_seed(cfg.seed * 1_000_003 + step)
            for group in optimiser.param_groups:
                group["lr"] = lr_at(step, cfg, state["warmup_from"])
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                log_probs, frame_lengths = ctc_forward(model, audio.to(device, non_blocking=True),
                                                       lengths.to(device), cfg, True, generator)
            loss = torch.nn.functional.ctc_loss(log_probs.float().transpose(0, 1), targets.to(device),
                                                frame_lengths, target_lengths.to(device), zero_infinity=True)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimiser.step()
            state["step"], state["batch"] = step + 1, state["batch"] + 1
            last_loss = loss.item() if (step + 1) % cfg.log_every == 0 or step < 5 else last_loss
            if (step + 1) % cfg.log_every == 0:
                state["history"].append({"step": step + 1, "loss": round(last_loss, 4)})
                bar.set_postfix(loss=f"{last_loss:.3f}", lr=f"{lr_at(step, cfg, state['warmup_from']):.2e}",
                                gnorm=f"{float(grad_norm):.2f}")
            bar.update()
            if valid_items and (step + 1) % cfg.eval_every == 0:
                result = validate(model, valid_items, tokenizer, cfg, device)
                state["history"].append({"step": step + 1, **{k: result[k] for k in ("wer", "cer", "loss")}})
                state["best_wer"] = min(result["wer"], state["best_wer"] or 1e9)
                bar.write(f"step {step + 1}: valid wer {result['wer']:.3f} cer {result['cer']:.3f} "
                          f"loss {result['loss']:.2f} | {result['example']}")
            out_of_time = cfg.max_minutes and time.time() - started > cfg.max_minutes * 60
            if (step + 1) % cfg.ckpt_every == 0 or out_of_time or state["step"] >= cfg.max_steps:
                save_checkpoint(ckpt_path, model, optimiser, cfg, state)
            if cfg.keep_every and state["step"] % cfg.keep_every == 0:
                save_weights(out_dir / f"weights-{state['step']}.pt", model.state_dict(),
                             dataclasses.asdict(model.cfg), state["step"])
            if out_of_time or state["step"] >= cfg.max_steps:
                stop = bool(out_of_time)
                break
        else:
            state["epoch"], state["batch"] = state["epoch"] + 1, 0
            save_checkpoint(ckpt_path, model, optimiser, cfg, state)
    bar.close()
    save_checkpoint(ckpt_path, model, optimiser, cfg, state)
    if cfg.weights_out:
        save_weight_shards(model, Path(cfg.weights_out), state["step"])
    summary = {"step": state["step"], "loss": last_loss, "best_wer": state["best_wer"],
               "minutes": round((time.time() - started) / 60, 2), "done": state["step"] >= cfg.max_steps}
    if summary["done"] and cfg.export:
        summary["bundle"] = str(export(model, tokenizer, cfg))
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main(parse_config())
