"""The torch weights of a Steno bundle, read back from its `encoder.onnx`.

A bundle is all a user may have of a model (the default one's training checkpoint is not shipped beside it),
yet it holds every weight: `models.export` writes the model's config into the graph's metadata, parameters
keep their names (`model.<name>`; of equal tensors one is stored and the others are Identity nodes of
it), and only the matrices of linear layers are renamed (`onnx::MatMul_N`, stored transposed); those are
named back from the node that uses them. So `--init_from BUNDLE` fine-tunes
a bundle, e.g. the embedded model on your own transcribed recordings.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch


def _module_path(node_name: str) -> str:
    """'/layers.0/ff1/ff1.1/MatMul' -> 'layers.0.ff1.1': torch.onnx scopes a node by the modules it ran
    in, and a Sequential's child appears as 'ff1.1' after 'ff1'."""
    path: list[str] = []
    for part in node_name.strip("/").split("/")[:-1]:
        if path and part.startswith(path[-1] + "."):
            path[-1] = part
        else:
            path.append(part)
    return ".".join(path)


def weights_from_bundle(directory: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(state_dict, model config dict) of a Steno conformer bundle; ValueError for any other model."""
    import onnx
    from onnx import numpy_helper

    from models.conformer import ConformerCTC
    from models.export import config_from_dict

    graph_path = Path(directory) / "encoder.onnx"
    if not graph_path.exists():
        raise ValueError(f"{directory}: no encoder.onnx (not a bundle)")
    graph = onnx.load(str(graph_path))
    meta = {p.key: p.value for p in graph.metadata_props}
    if "conformer_config" not in meta:
        raise ValueError(f"{graph_path}: not a Steno conformer export (no conformer_config in its metadata); "
                         "an imported NeMo bundle is fine-tuned in NeMo, not here")
    config = json.loads(meta["conformer_config"])
    expected = ConformerCTC(config_from_dict(config)).state_dict()
    arrays = {i.name: numpy_helper.to_array(i) for i in graph.graph.initializer}
    for node in graph.graph.node:  # the exporter keeps one of equal tensors; the others alias it
        if node.op_type == "Identity" and node.input[0] in arrays:
            arrays[node.output[0]] = arrays[node.input[0]]
    state = {name[len("model."):]: array for name, array in arrays.items() if name.startswith("model.")}
    for node in graph.graph.node:
        renamed = [x for x in node.input if x.startswith("onnx::MatMul")]
        if node.op_type == "MatMul" and renamed:
            state[_module_path(node.name) + ".weight"] = arrays[renamed[0]].T
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ValueError(f"{graph_path}: weights not found in the graph: {', '.join(missing[:5])}")
    for name, tensor in expected.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise ValueError(f"{graph_path}: {name} has shape {state[name].shape}, "
                             f"the config says {tuple(tensor.shape)}")
    return {name: torch.from_numpy(np.array(state[name])) for name in expected}, config
