"""`steno export`, `steno import-nemo` and `steno info`: make and inspect model bundles."""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def register(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser("export", help="export a trained checkpoint (or random weights) to a bundle")
    source = export.add_mutually_exclusive_group(required=True)
    source.add_argument("checkpoint", nargs="?", help="training checkpoint (.pt)")
    source.add_argument("--random", action="store_true",
                        help="untrained weights of the default size (for development and benchmarks)")
    export.add_argument("-o", "--output", required=True, help="bundle directory to write")
    export.add_argument("--seed", type=int, default=0)
    export.add_argument("--no-int8", action="store_true", help="skip the int8 variant")
    export.set_defaults(func=run_export)

    nemo = commands.add_parser("import-nemo", help="turn a NeMo cache-aware streaming checkpoint into a bundle "
                               "(needs the `nemo` extra)")
    nemo.add_argument("checkpoint", help="a .nemo file: CTC or hybrid RNNT/CTC cache-aware FastConformer")
    nemo.add_argument("-o", "--output", required=True, help="bundle directory to write")
    nemo.add_argument("--att-context", type=att_context, metavar="LEFT,RIGHT",
                      help="attention context (look-ahead) of a multi-look-ahead model, e.g. 70,13 "
                           "(default: the model's first)")
    nemo.add_argument("--no-int8", action="store_true", help="skip the int8 variant")
    nemo.set_defaults(func=run_import_nemo)

    info = commands.add_parser("info", help="check a model bundle and print its configuration")
    info.add_argument("bundle", help="bundle directory")
    info.set_defaults(func=run_info)

    from models import pipeline_cli  # corpus, synth, train, eval: the default model's recipe

    pipeline_cli.register(commands)


def run_export(args: argparse.Namespace) -> int:
    import torch

    from models.conformer import ConformerCTC, ConformerConfig
    from models.export import export_bundle, load_checkpoint
    from models.tokenizer import CharTokenizer

    tokenizer = CharTokenizer()
    if args.random:
        torch.manual_seed(args.seed)
        model = ConformerCTC(ConformerConfig(vocab_size=len(tokenizer.tokens))).eval()
    else:
        try:
            model, _ = load_checkpoint(args.checkpoint)
        except (OSError, ValueError) as exc:
            print(f"error: {exc}")
            return 2
    export_bundle(model, tokenizer, args.output, int8=not args.no_int8)
    print(args.output)
    return 0


def att_context(text: str) -> tuple[int, int]:
    try:
        left, right = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LEFT,RIGHT (two integers, e.g. 70,13), got {text!r}") from None
    return left, right


def run_import_nemo(args: argparse.Namespace) -> int:
    from models.nemo_import import NemoImportError, import_nemo

    try:
        path = import_nemo(args.checkpoint, args.output, args.att_context, int8=not args.no_int8)
    except NemoImportError as exc:
        print(f"error: {exc}")
        return 2
    print(path)
    return 0


def run_info(args: argparse.Namespace) -> int:
    from models.bundle import BundleError, load_bundle
    from models.runtime import StreamingEncoder

    try:
        bundle = load_bundle(args.bundle)
        StreamingEncoder(bundle, threads=1)
    except BundleError as exc:
        print(f"error: {exc}")
        return 2
    print(json.dumps(asdict(bundle.config), indent=2))
    return 0
