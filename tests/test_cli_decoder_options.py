"""`--beam-size` on the serving commands: it reaches the engine's decoder beside the bundle's tuned
fusion weights, and a bad value is refused with a message."""
from __future__ import annotations

import asyncio
import json

import pytest

from models import DEFAULT_BUNDLE
from server_fixtures import TONE_MODEL
from streaming.cli import build_parser, engine_options
from streaming.engine import Engine


def parsed(*argv: str):
    return build_parser().parse_args(["transcribe", "talk.wav", *argv])


def test_beam_size_reaches_the_engine_with_the_bundles_tuned_fusion(tmp_path):
    options = engine_options(parsed("--beam-size", "48", "--summaries", "none"), tmp_path / "notes.sqlite3")
    fusion = json.loads((DEFAULT_BUNDLE / "lm" / "fusion.json").read_text())
    assert options.decoder.beam_size == 48
    assert (options.decoder.alpha, options.decoder.beta) == (fusion["alpha"], fusion["beta"])
    assert engine_options(parsed("--summaries", "none"), tmp_path / "n.sqlite3").decoder.beam_size == 16

    engine = Engine(engine_options(parsed("--model", str(TONE_MODEL), "--beam-size", "3", "--summaries", "none",
                                          "--no-speakers"), tmp_path / "tone.sqlite3"))
    try:
        assert engine.decoder_options.beam_size == 3
    finally:
        asyncio.run(engine.close())


def test_a_beam_size_below_one_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="--beam-size must be at least 1"):
        engine_options(parsed("--beam-size", "0"), tmp_path / "notes.sqlite3")
