"""Flags shared by several subcommands, defined once."""

from __future__ import annotations

import argparse


def add_overrides(parser: argparse.ArgumentParser, help: str) -> None:
    """``--set KEY=VALUE`` (repeatable): config overrides, parsed by ``load_config``."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )
