"""models/grow.py: inserted layers start silent, so a deepened model computes what the original did."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from models.conformer import ConformerCTC
from models.grow import deepen, main, silent_copy
from models.train import MODELS, load_weights


def tiny_model(seed: int = 0) -> ConformerCTC:
    torch.manual_seed(seed)
    return ConformerCTC(dataclasses.replace(MODELS["tiny"], n_layers=3)).eval()


def test_a_silent_copy_adds_nothing_to_the_residual_stream():
    layer = tiny_model().layers[1]
    with torch.no_grad():  # trained-looking branches: without the zeroing they would all add to x
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    silent = silent_copy(layer).eval()
    d, k = layer.ff1[0].normalized_shape[0], layer.conv.depthwise.kernel_size[0]
    x = torch.randn(2, 12, d)
    mask = torch.ones(1, 1, 12, 12, dtype=torch.bool)
    cos, sin = torch.ones(12, d // layer.attn.n_heads), torch.zeros(12, d // layer.attn.n_heads)
    empty = x.new_zeros(2, 0, d)
    out, *_ = silent(x, empty, empty, x.new_zeros(2, d, k - 1), mask, cos, sin)
    assert torch.allclose(out, silent.norm(x), atol=1e-6)
    original, *_ = layer.eval()(x, empty, empty, x.new_zeros(2, d, k - 1), mask, cos, sin)
    assert not torch.allclose(original, silent.norm(x), atol=1e-2)


def test_deepened_model_gives_the_same_posteriors_offline_and_streaming():
    model = tiny_model()
    grown = deepen(model, [0, 2]).eval()
    assert grown.cfg.n_layers == 5 and len(grown.layers) == 5
    audio = 0.1 * torch.randn(1, 4 * model.cfg.chunk_samples)
    with torch.no_grad():
        expected, _ = model(audio)
        offline, _ = grown(audio)
        caches = [torch.zeros(1, *s.shape, dtype=getattr(torch, s.dtype)) for s in grown.cache_specs()]
        streamed = []
        for start in range(0, audio.shape[1], grown.cfg.chunk_samples):
            log_probs, *caches = grown.step(audio[:, start:start + grown.cfg.chunk_samples], *caches)
            streamed.append(log_probs)
    # default LayerNorms (scale 1, shift 0) re-normalise an already normalised vector: the identity
    assert torch.allclose(offline, expected, atol=1e-4)
    assert torch.allclose(torch.cat(streamed, 1)[:, :offline.shape[1]], offline, atol=1e-4)


def test_cli_writes_weights_that_init_from_reads(tmp_path):
    model = tiny_model()
    torch.save({"model": model.state_dict(), "config": dataclasses.asdict(model.cfg), "step": 120},
               tmp_path / "small.pt")
    main([str(tmp_path / "small.pt"), "--after", "1", "-o", str(tmp_path / "grown.pt")])
    weights, config, step = load_weights(tmp_path / "grown.pt")
    assert step == 120 and config["n_layers"] == 4
    grown = ConformerCTC(dataclasses.replace(model.cfg, n_layers=4))
    grown.load_state_dict(weights)
    assert torch.count_nonzero(grown.layers[2].attn.out.weight) == 0
    assert torch.equal(grown.layers[3].attn.out.weight, model.layers[2].attn.out.weight)


@pytest.mark.parametrize("after", [[], [3], [-1], [1, 1]])
def test_bad_positions_are_refused(after):
    with pytest.raises(ValueError, match="distinct layer indices in 0..2"):
        deepen(tiny_model(), after)
