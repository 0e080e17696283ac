"""`steno corpus build`, `steno synth`, `steno train`, `steno eval`: the default model's recipe
(models/TRAINING.md). Imports are lazy: the serving commands never load torch or the synthesisers."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    corpus = commands.add_parser("corpus", help="training text for the default model")
    actions = corpus.add_subparsers(dest="corpus_command", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="gather, normalise and split the text corpus")
    build.add_argument("-o", "--output", type=Path, required=True, metavar="DIR")
    build.add_argument("--heldout-permille", type=int, default=20)
    build.add_argument("--seed", type=int, default=0)
    build.set_defaults(func=run_corpus)

    synth = commands.add_parser("synth", help="synthesize multi-voice training/eval speech (resumable)")
    synth.add_argument("manifest", type=Path, help="JSONL manifest to write (appended to; reruns resume)")
    synth.add_argument("--texts", type=Path, help="sentences, one a line (corpus DIR/train.txt or heldout.txt)")
    synth.add_argument("--hours", type=float, default=1.0)
    synth.add_argument("--workers", type=int, default=1)
    synth.add_argument("--split", choices=("train", "eval"), default="train",
                       help="train: voices outside the held-out family; eval: only held-out voices")
    synth.add_argument("--families", nargs="+", help="only these voice families")
    synth.add_argument("--format", choices=("flac", "wav", "opus"), default="flac")
    synth.add_argument("--audio-dir", type=Path, help="default: MANIFEST's name + _audio beside it")
    synth.add_argument("--augment-scale", type=float, default=1.0, help="0: clean speech")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--smoke", action="store_true", help="a handful of items from built-in sentences")
    synth.add_argument("--list-voices", action="store_true", help="print the installed voices and exit")
    synth.set_defaults(func=run_synth)

    # Options pass through untouched to models/train.py's own parser (`steno train --help` lists them),
    # so this parser treats no "-" string as its own (prefix "+"), and torch loads only when training.
    train = commands.add_parser("train", help="train the conformer (options: models/train.py's TrainConfig)",
                                prefix_chars="+", add_help=False)
    train.add_argument("args", nargs=argparse.REMAINDER)
    train.set_defaults(func=run_train)

    ev = commands.add_parser("eval", help="word error rate of a bundle on a JSONL manifest")
    ev.add_argument("manifest", type=Path)
    ev.add_argument("--model", type=Path, help="bundle directory (default: the embedded model)")
    ev.add_argument("--no-lm", action="store_true", help="decode without the bundle's LM (acoustic-only beam search)")
    ev.add_argument("--greedy", action="store_true", help="best-path decoding, no beam search and no LM")
    ev.add_argument("--int8", action="store_true", help="use the bundle's int8 encoder")
    ev.add_argument("--threads", type=int, default=2)
    ev.add_argument("--streaming-check", action="store_true", help="also decode offline and compare")
    ev.add_argument("--checkpoint", type=Path, help="torch checkpoint for the offline side of --streaming-check")
    ev.add_argument("--limit", type=int, help="only the first N items")
    ev.add_argument("--exclude", action="append", default=[], help="skip items whose audio path contains this")
    ev.add_argument("--beam-size", type=int, help="decoder beam (default: the server's)")
    ev.add_argument("--alpha", type=float, help="LM weight (default: the bundle's lm/fusion.json, else 0.5)")
    ev.add_argument("--beta", type=float, help="word bonus (default: the bundle's lm/fusion.json, else 1.5)")
    ev.add_argument("--save-hyps", type=Path, metavar="JSONL", help="write each item's reference and hypothesis here")
    ev.add_argument("--compare", type=Path, metavar="JSONL",
                    help="another run's --save-hyps file: print a paired bootstrap of the WER difference")
    ev.add_argument("--tune", action="store_true",
                    help="grid-search alpha/beta on this (development) manifest, write lm/fusion.json")
    ev.add_argument("--alphas", type=float, nargs="+", default=[0.3, 0.5, 0.7, 0.9, 1.2])
    ev.add_argument("--betas", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0])
    ev.set_defaults(func=run_eval)


SMOKE_TEXTS = ["The meeting starts at ten thirty.", "Speech recognition turns audio into text.",
               "Please send the report by Friday.", "We sold four hundred tickets."]


def run_corpus(args: argparse.Namespace) -> int:
    from models.corpus import CorpusOptions, build_corpus

    stats = build_corpus(args.output, CorpusOptions(heldout_permille=args.heldout_permille, seed=args.seed))
    print(json.dumps({k: v for k, v in stats.items() if k != "options"}, indent=1))
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from models import synthesize

    if args.list_voices:
        for v in synthesize.voices_report():
            print(f"{v['split']:<6} {v['family']:<9} {v['name']:<28} speaker={v['speaker']}")
        return 0
    if args.smoke:
        texts, hours = SMOKE_TEXTS, min(args.hours, 0.004)
    elif args.texts is None:
        raise SystemExit("steno synth: --texts FILE is required (or --smoke)")
    else:
        from models.corpus import read_sentences

        texts, hours = read_sentences(args.texts), args.hours
    families = tuple(args.families) if args.families else None
    try:
        stats = synthesize.run(args.manifest, texts, hours, args.workers, args.split, args.seed, families,
                               args.format, args.audio_dir, args.augment_scale, progress=sys.stderr.isatty())
    except RuntimeError as exc:
        raise SystemExit(f"steno synth: {exc}") from exc
    print(json.dumps(stats))
    return 1 if stats["failed"] else 0


def run_train(args: argparse.Namespace) -> int:
    from models.train import main, parse_config

    main(parse_config(args.args))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from models import DEFAULT_BUNDLE
    from models.bundle import BundleError
    from decoders.language_model import tuned_options
    from models.evaluate import EvalOptions, evaluate, tune_fusion

    model = args.model or DEFAULT_BUNDLE
    options = EvalOptions(model=model, use_lm=not (args.no_lm or args.greedy), greedy=args.greedy,
                          precision="int8" if args.int8 else "fp32", threads=args.threads,
                          streaming_check=args.streaming_check, checkpoint=args.checkpoint, limit=args.limit,
                          exclude=tuple(args.exclude))
    given = {k: v for k, v in (("beam_size", args.beam_size), ("alpha", args.alpha), ("beta", args.beta))
             if v is not None}
    try:
        if given:
            decoder = tuned_options(model / "lm", use_lm=not args.no_lm, **given)
            options = replace(options, decoder=decoder)
        if args.tune:
            _, lines = tune_fusion(args.manifest, options, args.alphas, args.betas, progress=sys.stderr.isatty())
        else:
            _, lines = evaluate(args.manifest, options, progress=sys.stderr.isatty(), save_hyps=args.save_hyps,
                                compare=args.compare)
    except (BundleError, ValueError, OSError) as exc:
        raise SystemExit(f"steno eval: {exc}") from exc
    print("\n".join(lines))
    return 0
