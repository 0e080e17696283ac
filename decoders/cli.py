"""`steno lm …` subcommands (language-model tools)."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    """Add the decoder layer's subcommands to the `steno` parser."""
    lm = commands.add_parser("lm", help="language-model tools")
    actions = lm.add_subparsers(dest="lm_command", required=True, metavar="ACTION")
    build = actions.add_parser(
        "build", help="normalise a text corpus and build a KenLM model directory for the decoder",
        description="Writes DIR/lm.bin (KenLM binary) and DIR/unigrams.txt (one word a line).")
    build.add_argument("corpus", type=Path, help="text file, one sentence a line (.gz accepted)")
    build.add_argument("-o", "--output", type=Path, required=True, metavar="DIR")
    build.add_argument("--order", type=int, default=4, help="n-gram order (default 4)")
    build.add_argument("--prune", type=int, nargs="+", metavar="COUNT",
                       help="lmplz pruning: drop n-grams seen at most COUNT times, per order "
                            "from unigrams up, e.g. 0 1 1 (unigrams are never pruned)")
    build.add_argument("--memory", default="10%", help="lmplz sort memory, e.g. 10%% or 2G")
    build.add_argument("--keep-arpa", action="store_true", help="also keep DIR/lm.arpa")
    build.add_argument("--quantize", type=int, default=8, metavar="BITS",
                       help="bits per probability and back-off in a trie (default 8: a third of "
                            "the size); 0: KenLM's unquantised probing hash table")
    build.set_defaults(func=_build)


def _build(args: argparse.Namespace) -> int:
    from decoders.lm_build import build_lm

    if not args.corpus.is_file():
        raise SystemExit(f"steno lm build: no such corpus file: {args.corpus}")
    try:
        report = build_lm(args.corpus, args.output, order=args.order, prune=args.prune,
                          memory=args.memory, keep_arpa=args.keep_arpa, quantize_bits=args.quantize)
    except (ValueError, RuntimeError, FileNotFoundError) as error:
        raise SystemExit(f"steno lm build: {error}") from error
    print(f"{report.directory}: {report.sentences} sentences, {report.words} words, "
          f"{report.unigrams} unigrams")
    return 0
