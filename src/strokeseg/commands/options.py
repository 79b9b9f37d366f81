"""Flags shared by several subcommands, defined once."""

from __future__ import annotations

import argparse


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


def add_speed_options(parser: argparse.ArgumentParser) -> None:
    """``--no-crop``, ``--runtime``, ``--threads``, ``--level`` for predict and evaluate."""
    group = parser.add_argument_group("speed (docs/performance.md)")
    group.add_argument(
        "--no-crop",
        dest="crop",
        action="store_false",
        help="segment every whole slice (the exact path) instead of the boxes around the head",
    )
    group.add_argument(
        "--runtime",
        choices=("eager", "onnx", "compile"),
        default="eager",
        help="PyTorch eager NHWC (default), ONNX Runtime, or torch.compile",
    )
    group.add_argument("--threads", type=positive_int, help="CPU threads (default: PyTorch's)")
    group.add_argument(
        "--level",
        type=int,
        choices=(1, 2, 3, 4),
        default=4,
        help="UNet++ pruned at X(0,LEVEL) (trained with deep supervision; 4: whole UNet++)",
    )
