"""models/average.py: checkpoint averaging is an element-wise mean over one architecture."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from models.average import average_state_dicts, main
from models.conformer import ConformerCTC
from models.export import load_checkpoint
from models.train import MODELS


def tiny_state(seed: int, **changes) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return ConformerCTC(dataclasses.replace(MODELS["tiny"], **changes)).state_dict()


def test_the_average_is_the_element_wise_mean_and_keeps_integer_buffers():
    states = [tiny_state(seed) for seed in (0, 1, 2)]
    for state, count in zip(states, (3, 4, 5)):
        state["counter"] = torch.tensor(count)
    averaged = average_state_dicts(states)
    name = "layers.0.attn.out.weight"
    torch.testing.assert_close(averaged[name], (states[0][name] + states[1][name] + states[2][name]) / 3)
    assert not torch.equal(averaged[name], states[2][name])
    assert averaged["counter"].dtype == torch.int64 and int(averaged["counter"]) == 5


def test_other_architectures_are_refused():
    with pytest.raises(ValueError, match="one architecture"):
        average_state_dicts([tiny_state(0), tiny_state(0, n_layers=3)])
    with pytest.raises(ValueError, match="nothing to average"):
        average_state_dicts([])


def test_cli_output_exports(tmp_path):
    paths = []
    for seed, step in ((0, 1000), (1, 2000)):
        model = ConformerCTC(MODELS["tiny"])
        model.load_state_dict(tiny_state(seed))
        paths.append(tmp_path / f"weights-{step}.pt")
        torch.save({"model": model.state_dict(), "config": dataclasses.asdict(model.cfg), "step": step}, paths[-1])
    main([*map(str, paths), "-o", str(tmp_path / "avg.pt")])
    model, _ = load_checkpoint(tmp_path / "avg.pt")  # `steno export`'s weights-only loader
    name = "layers.1.conv.pointwise_out.weight"
    expected = (tiny_state(0)[name] + tiny_state(1)[name]) / 2
    torch.testing.assert_close(model.state_dict()[name], expected)
    assert torch.load(tmp_path / "avg.pt", weights_only=True)["step"] == 2000


def test_half_stores_parameters_as_float16_and_keeps_the_front_end_exact(tmp_path):
    model = ConformerCTC(MODELS["tiny"])
    model.load_state_dict(tiny_state(3))
    full = tmp_path / "full.pt"
    torch.save({"model": model.state_dict(), "config": dataclasses.asdict(model.cfg), "step": 7}, full)
    main([str(full), "--half", "-o", str(tmp_path / "half.pt")])
    stored = torch.load(tmp_path / "half.pt", weights_only=True)["model"]
    assert stored["layers.0.attn.qkv.weight"].dtype == torch.float16
    assert torch.equal(stored["frontend.dft"], model.state_dict()["frontend.dft"])  # a buffer: untouched
    parameter_bytes = sum(p.numel() * 4 for p in model.parameters())
    assert full.stat().st_size - (tmp_path / "half.pt").stat().st_size > 0.45 * parameter_bytes
    loaded, _ = load_checkpoint(tmp_path / "half.pt")
    assert loaded.state_dict()["layers.0.attn.qkv.weight"].dtype == torch.float32
    audio = torch.randn(1, 16000)
    model.eval(), loaded.eval()
    with torch.no_grad():
        expected, _ = model(audio, torch.tensor([16000]))
        got, _ = loaded(audio, torch.tensor([16000]))
    assert (got - expected).abs().max() < 0.05  # float16 rounding of the weights, nothing more
    assert not torch.equal(got, expected)
