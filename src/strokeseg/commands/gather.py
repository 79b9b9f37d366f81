"""``strokeseg gather``: lesions.csv and the report index of a folder split across jobs."""

from __future__ import annotations

import argparse
from pathlib import Path

from strokeseg.commands.options import add_output


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "gather",
        help="lesions.csv (and the report index) of a predict run split with --part/--parts",
        description="After every `predict --part I --parts N` job has finished, write the "
        "folder's lesions.csv (and, for runs with --report, report.html, "
        "lesions_by_lesion.csv and territories.csv) from the scans' <scan>_summary.json, "
        "exactly as one run over the whole folder would. Needs no checkpoint.",
    )
    p.add_argument("-i", "--input", type=Path, required=True, help="the scans' file or folder")
    add_output(p, "the predict output folder", required=True)
    p.add_argument("--overwrite", action="store_true", help="replace existing tables")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from strokeseg.reports.gather import gather

    for path in gather(args.input, args.out, overwrite=args.overwrite):
        print(f"wrote {path}")
    return 0
