"""Flags shared by several subcommands, defined once."""

from __future__ import annotations

import argparse
from pathlib import Path


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_overrides(parser: argparse.ArgumentParser, help: str) -> None:
    """``--set KEY=VALUE`` (repeatable): config overrides, parsed by ``load_config``."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )


def add_output(parser: argparse.ArgumentParser, help: str, **kwargs) -> None:
    """``-o/--out`` (``--output`` kept as an alias): the output flag of every subcommand."""
    parser.add_argument("-o", "--out", "--output", dest="out", type=Path, help=help, **kwargs)
