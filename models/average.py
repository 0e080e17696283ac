"""Average the weights of several checkpoints of one training run (as ESPnet's average_checkpoints).

Late checkpoints of a run sit around the same minimum; their mean is often better than any one of
them (here: steps 81 000 and 86 250 of the 10-layer model, 53.25 % and 53.34 % held-out WER alone,
52.53 % averaged; models/TRAINING.md). The inputs must share one architecture.

    python -m models.average out/weights-95000.pt out/weights-96000.pt out/ckpt.pt -o averaged.pt
    steno export averaged.pt -o BUNDLE

The output is a weights file ({"model", "config", "step"}, the last input's step) that `steno export`,
`--init_from` and models.grow read. `--half` stores the parameters as float16: half the file, for the
checkpoint committed to git, which travels with every device call (64 MiB in all). Loading casts them
back to float32; one file alone is just converted (`python -m models.average W.pt --half -o W16.pt`).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating-point tensors; integer buffers are taken from the last state."""
    if not states:
        raise ValueError("nothing to average")
    names = list(states[-1])
    for i, state in enumerate(states):
        if list(state) != names or any(state[n].shape != states[-1][n].shape for n in names):
            raise ValueError(f"checkpoint {i} has other tensors or shapes than the last one: "
                             "only checkpoints of one architecture can be averaged")
    return {n: torch.stack([s[n].float() for s in states]).mean(0).to(states[-1][n].dtype)
            if states[-1][n].is_floating_point() else states[-1][n] for n in names}


def halve_parameters(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    """Parameters as float16; buffers (the front-end's DFT and mel matrices) stay as they are, exact."""
    from models.conformer import ConformerCTC
    from models.export import config_from_dict

    buffers = {name for name, _ in ConformerCTC(config_from_dict(config)).named_buffers()}
    return {n: t.half() if t.is_floating_point() and n not in buffers else t for n, t in state.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path, nargs="+", help="checkpoints or weights files of one run")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--half", action="store_true", help="store the parameters as float16")
    args = parser.parse_args(argv)
    from models.train import load_weights, save_weights

    loaded = [load_weights(path) for path in args.weights]
    averaged = average_state_dicts([state for state, _, _ in loaded])
    _, config, step = loaded[-1]
    save_weights(args.output, halve_parameters(averaged, config) if args.half else averaged, config, step)
    print(f"averaged {len(loaded)} checkpoints (steps {', '.join(str(s) for _, _, s in loaded)}): {args.output}")


if __name__ == "__main__":
    main()
