"""Deepen a trained conformer-CTC by inserting layers that start out doing (almost) nothing.

A CPU session cannot train a deeper model from scratch past CTC's blank plateau (models/train.py's
MODELS note), but it can add depth to one that is already past it. Each new layer is a copy of the
layer below it with the output projections of its four residual branches (both feed-forwards,
attention, convolution) set to zero: it adds nothing to the residual stream until training moves
them, and only its closing LayerNorm acts, with the copied layer's scale and shift. Its inner
weights start as trained features rather than noise.

    python -m models.grow models/checkpoints/embedded.pt --after 1 3 -o artifacts/grown6.pt
    python -m models.train --init_from artifacts/grown6.pt ...

The output is a weights file as `--init_from` reads it ({"model", "config", "step"}).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
from pathlib import Path

from torch import nn

from models.conformer import ConformerCTC, ConformerLayer


def silent_copy(layer: ConformerLayer) -> ConformerLayer:
    """`layer` with every residual branch's last projection zeroed."""
    new = copy.deepcopy(layer)
    for projection in (new.ff1[4], new.ff2[4], new.attn.out, new.conv.pointwise_out):
        nn.init.zeros_(projection.weight)
        nn.init.zeros_(projection.bias)
    return new


def deepen(model: ConformerCTC, after: list[int]) -> ConformerCTC:
    """A new model with a silent copy of layer i inserted after it, for each i in `after`."""
    n = model.cfg.n_layers
    if not after or any(not 0 <= i < n for i in after) or len(set(after)) != len(after):
        raise ValueError(f"--after needs distinct layer indices in 0..{n - 1}, got {after}")
    layers: list[ConformerLayer] = []
    for i, layer in enumerate(model.layers):
        layers.append(copy.deepcopy(layer))
        if i in after:
            layers.append(silent_copy(layer))
    grown = ConformerCTC(dataclasses.replace(model.cfg, n_layers=len(layers)))
    grown.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("layers.")},
                          strict=False)
    grown.layers = nn.ModuleList(layers)
    return grown


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path,
                        help="a checkpoint, weights file or bundle directory (models/checkpoints/*.pt, ckpt.pt)")
    parser.add_argument("--after", type=int, nargs="+", required=True, help="insert a new layer after these")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    from models.export import config_from_dict
    from models.train import load_weights, save_weights

    weights, raw_config, step = load_weights(args.weights)
    model = ConformerCTC(config_from_dict(raw_config))
    model.load_state_dict(weights)
    grown = deepen(model, args.after)
    save_weights(args.output, grown.state_dict(), dataclasses.asdict(grown.cfg), step)
    print(f"{model.cfg.n_layers} -> {grown.cfg.n_layers} layers, "
          f"{sum(p.numel() for p in grown.parameters()) / 1e6:.2f} M parameters, step {step}: {args.output}")


if __name__ == "__main__":
    main()
