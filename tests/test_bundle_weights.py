"""models/bundle_weights.py: a bundle's encoder.onnx gives back the exact torch weights it was exported from."""
from __future__ import annotations

import json

import pytest
import torch

from models.bundle_weights import _module_path, weights_from_bundle
from models.train import load_weights
from tests.model_fixtures import CONFIGS, exported


def test_module_paths_from_node_names():
    assert _module_path("/layers.0/ff1/ff1.1/MatMul") == "layers.0.ff1.1"
    assert _module_path("/layers.3/attn/qkv/MatMul") == "layers.3.attn.qkv"
    assert _module_path("/subsampling/out/MatMul") == "subsampling.out"


@pytest.mark.parametrize("name", ["sub4", "sub8"])
def test_every_weight_comes_back_exactly(tmp_path_factory, name):
    model, bundle = exported(tmp_path_factory, name)
    state, config = weights_from_bundle(bundle)
    assert config["n_layers"] == CONFIGS[name].n_layers
    original = model.state_dict()
    assert state.keys() == original.keys()
    for key, tensor in original.items():
        assert torch.equal(state[key], tensor), key
    weights, raw, step = load_weights(bundle)  # what --init_from, models.average and models.grow read
    assert step == 0 and raw == config
    assert torch.equal(weights["layers.1.ff2.1.weight"], original["layers.1.ff2.1.weight"])


def test_a_graph_without_the_conformer_config_is_refused(tmp_path_factory):
    import onnx

    _, bundle = exported(tmp_path_factory, "sub4")
    graph = onnx.load(str(bundle / "encoder.onnx"))
    kept = [p for p in graph.metadata_props if p.key != "conformer_config"]
    del graph.metadata_props[:]
    graph.metadata_props.extend(kept)
    onnx.save(graph, str(bundle / "encoder.onnx"))
    with pytest.raises(ValueError, match="not a Steno conformer export"):
        weights_from_bundle(bundle)
    with pytest.raises(ValueError, match="not a bundle"):
        weights_from_bundle(bundle / "missing")
    json.loads((bundle / "config.json").read_text())  # the rest of the bundle is untouched
