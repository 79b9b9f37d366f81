"""``strokeseg demo``: synthesise a cohort, train, evaluate, predict, and write a report."""

from __future__ import annotations

import argparse
from pathlib import Path

from strokeseg.commands.options import add_output, add_overrides


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="the whole workflow on a synthetic cohort (about 10 minutes on 2 CPU cores)",
        description="Make a SynthATLAS cohort, train the proposed model at a CPU-sized setting "
        "(configs/demo.yaml), evaluate it on held-out subjects, predict one scan, and write "
        "OUT/report.md.",
    )
    add_output(p, "output folder (./demo)", default=Path("demo"))
    p.add_argument("--subjects", type=int, default=40, help="synthetic subjects (40)")
    p.add_argument("--seed", type=int, default=0)
    add_overrides(p, "override the demo config, e.g. --set optim.epochs=2")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier demo in OUT")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from strokeseg.jobs.demo import run_demo

    report = run_demo(args.out, args.subjects, args.seed, args.overrides, args.overwrite)
    print(report.read_text(encoding="utf-8"))
    print(f"report: {report}")
    return 0
