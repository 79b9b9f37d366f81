"""The ``strokeseg`` command line: one entry point, one module per subcommand.

Each module in :mod:`strokeseg.commands` defines ``add_parser(subparsers)``, which registers
its subcommand and sets ``run`` as the default handler. Command modules import nothing
heavy at module level, so ``strokeseg --help`` and the inference commands start fast.
"""

from __future__ import annotations

import argparse
import sys

from strokeseg import __version__
from strokeseg.commands import COMMANDS
from strokeseg.errors import StrokesegError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="strokeseg",
        description="Stroke lesion segmentation: train, evaluate, predict, export. "
        "A research tool, not a medical device.",
    )
    parser.add_argument("--version", action="version", version=f"strokeseg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a C/ASCII locale must not crash a report
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except StrokesegError as error:
        print(f"strokeseg {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"strokeseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
