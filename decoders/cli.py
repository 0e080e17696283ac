"""`steno lm …` subcommands (language-model tools)."""
from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    """Add the decoder layer's subcommands to the `steno` parser."""
