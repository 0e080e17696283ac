"""Training: a few steps on a tiny manifest lower the loss, and a run cut into pieces (checkpoint,
resume) ends exactly where an uninterrupted run ends; weights travel as small shards."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).parent))
from make_tone_model import WORDS, tone_speech

from models.export import load_checkpoint
from models.train import MODELS, TrainConfig, load_weights, lr_at, main, save_weight_shards
from models.train_data import frequency_warp, make_batches, read_manifest, spec_augment


def tone_manifest(directory: Path, n: int, seed: int) -> Path:
    """Tone-speech items (tests/make_tone_model.py) as a manifest, as `steno synth` writes one."""
    rng = np.random.default_rng(seed)
    (directory / "audio").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        text = " ".join(rng.choice(WORDS, rng.integers(1, 3)))
        audio = tone_speech(text, rng)
        sf.write(directory / "audio" / f"{seed}-{i}.flac", audio, 16000)
        lines.append(json.dumps({"id": f"{seed}-{i}", "audio": f"audio/{seed}-{i}.flac", "text": text,
                                 "duration": len(audio) / 16000, "family": "tone"}))
    manifest = directory / f"manifest-{seed}.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


@pytest.fixture(scope="module")
def manifests(tmp_path_factory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tone_data")
    return tone_manifest(directory, 48, seed=1), tone_manifest(directory, 6, seed=2)


def config(manifests, out: Path, **overrides) -> TrainConfig:
    train, valid = manifests
    return TrainConfig(**{
        "train_manifest": str(train), "valid_manifest": str(valid), "out_dir": str(out / "run"),
        "bundle_dir": str(out / "bundle"), "model": "tiny", "max_batch_seconds": 30.0, "workers": 0, "lr": 3e-3,
        "warmup_steps": 3, "max_steps": 24, "eval_every": 24, "eval_items": 6, "ckpt_every": 1000,
        "log_every": 4, "export": False, **overrides})


def test_a_few_steps_lower_the_loss_and_report_wer(manifests, tmp_path):
    torch.set_num_threads(1)
    summary = main(config(manifests, tmp_path))
    history = json.loads(json.dumps(torch.load(tmp_path / "run" / "ckpt.pt", weights_only=False)["history"]))
    losses = [h["loss"] for h in history if "wer" not in h]
    assert summary["done"] and summary["step"] == 24
    assert losses[-1] < 0.7 * losses[0], losses
    assert any("wer" in h for h in history) and summary["best_wer"] is not None
    model, _ = load_checkpoint(tmp_path / "run" / "ckpt.pt")  # `steno export`'s weights-only loader
    assert model.cfg.d_model == MODELS["tiny"].d_model


def test_resumed_run_matches_uninterrupted_run(manifests, tmp_path):
    torch.set_num_threads(1)
    whole = main(config(manifests, tmp_path / "whole", max_steps=10, eval_every=1000))
    pieces = config(manifests, tmp_path / "pieces", max_steps=10, eval_every=1000, max_minutes=1e-9)
    for expected_step in (1, 2, 3):  # each invocation stops after one step, on its time limit
        assert main(pieces)["step"] == expected_step
    resumed = main(config(manifests, tmp_path / "pieces", max_steps=10, eval_every=1000))
    assert resumed["step"] == 10 and resumed["done"]
    a = torch.load(tmp_path / "whole" / "run" / "ckpt.pt", weights_only=False)
    b = torch.load(tmp_path / "pieces" / "run" / "ckpt.pt", weights_only=False)
    assert (a["epoch"], a["batch"]) == (b["epoch"], b["batch"])
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    assert whole["loss"] == pytest.approx(resumed["loss"], rel=1e-3)


def test_kept_weights_are_the_run_at_their_steps(manifests, tmp_path):
    torch.set_num_threads(1)
    main(config(manifests, tmp_path, max_steps=8, eval_every=1000, keep_every=4))
    kept = sorted((tmp_path / "run").glob("weights-*.pt"))
    assert [p.name for p in kept] == ["weights-4.pt", "weights-8.pt"]
    early, _ = load_checkpoint(kept[0])   # `steno export`'s weights-only loader reads them
    last, _ = load_checkpoint(kept[1])
    final = torch.load(tmp_path / "run" / "ckpt.pt", weights_only=False)["model"]
    name = "layers.0.attn.out.weight"
    assert torch.equal(last.state_dict()[name], final[name])
    assert not torch.equal(early.state_dict()[name], final[name])


def test_weights_travel_as_small_shards(manifests, tmp_path):
    from models.conformer import ConformerCTC

    model = ConformerCTC(MODELS["tiny"])
    save_weight_shards(model, tmp_path / "w", step=7, max_bytes=1_000_000)
    shards = sorted((tmp_path / "w").glob("weights-*.pt"))
    assert len(shards) >= 2 and all(p.stat().st_size < 1_100_000 for p in shards)
    state, cfg, step = load_weights(tmp_path / "w")
    assert step == 7 and cfg["d_model"] == 64
    for name, tensor in model.state_dict().items():
        assert torch.equal(state[name], tensor)
    summary = main(config(manifests, tmp_path, init_from=str(tmp_path / "w"), max_steps=9))
    assert summary["step"] == 9  # continued from step 7


def test_batches_respect_the_padded_budget():
    rng = np.random.default_rng(0)
    durations = list(rng.uniform(1, 15, 500))
    batches = make_batches(durations, 60.0, seed=0, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(500))
    assert all(len(b) == 1 or max(durations[i] for i in b) * len(b) <= 60.0 for b in batches)
    assert batches == make_batches(durations, 60.0, seed=0, epoch=0)
    assert batches != make_batches(durations, 60.0, seed=0, epoch=1)


def test_spec_augment_masks_only_real_frames():
    feats = torch.randn(2, 300, 80)
    lengths = torch.tensor([300, 100])
    out = spec_augment(feats, lengths, freq_masks=2, freq_width=10, time_masks_per_second=2.0, time_width=20,
                       generator=torch.Generator().manual_seed(0))
    changed = out != feats
    assert changed.any() and changed.float().mean() < 0.5
    time_only = changed.all(dim=2)  # whole rows masked = time masks
    assert not time_only[1, 120:].any()  # never past the real length (+ mask width)


def test_frequency_warp_moves_formants_both_ways_within_the_bound():
    feats = torch.zeros(64, 5, 80)
    feats[:, :, 40] = 1.0  # one formant at mel bin 40
    assert torch.equal(frequency_warp(feats, 0.0), feats)
    out = frequency_warp(feats, 0.15, torch.Generator().manual_seed(0))
    centre = (out[:, 0] * torch.arange(80)).sum(1) / out[:, 0].sum(1)  # where each formant went
    assert centre.min() < 38 and centre.max() > 42  # squeezed and stretched
    assert (centre > 40 / 1.15 - 1).all() and (centre < 40 / 0.85 + 1).all()
    assert out.min() >= 0 and out.max() <= 1  # interpolation, never extrapolation
    assert torch.equal(out[:, 0], out[:, 4])  # the same warp on every frame of an utterance


def test_a_restart_warms_up_to_the_schedule_not_past_it():
    cfg = TrainConfig(lr=1e-3, min_lr=1e-5, warmup_steps=100, max_steps=10_000)
    assert lr_at(0, cfg) == pytest.approx(1e-5, rel=0.02) and lr_at(99, cfg) == pytest.approx(1e-3, rel=0.01)
    assert lr_at(10_000, cfg) == pytest.approx(1e-5)
    mid = lr_at(6_000, cfg)  # the cosine, 60 % of the way down
    assert lr_at(6_000, cfg, warmup_from=6_000) < mid / 50  # a fresh optimiser starts low ...
    assert lr_at(6_099, cfg, warmup_from=6_000) == pytest.approx(lr_at(6_099, cfg))  # ... and meets the schedule
    assert max(lr_at(s, cfg, warmup_from=6_000) for s in range(6_000, 6_200)) <= mid


def test_manifest_paths_resolve_relative_to_the_manifest(manifests):
    items = read_manifest(manifests[1])
    assert len(items) == 6 and all(Path(it["audio"]).is_file() for it in items)


def test_export_refuses_a_checkpoint_it_cannot_load_safely_with_a_message(tmp_path, capsys):
    from streaming.cli import main as steno

    old = tmp_path / "old.pt"  # as models.train wrote before: numpy's RNG state inside
    torch.save({"config": {}, "model": {}, "rng": {"numpy": np.random.get_state()}}, old)
    assert steno(["export", str(old), "-o", str(tmp_path / "b")]) == 2
    assert "weights-only load refuses" in capsys.readouterr().out
    torch.save({"model": {}}, tmp_path / "bare.pt")
    assert steno(["export", str(tmp_path / "bare.pt"), "-o", str(tmp_path / "b")]) == 2
    assert "not a training checkpoint" in capsys.readouterr().out
    assert steno(["export", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "b")]) == 2
    assert not (tmp_path / "b").exists()
