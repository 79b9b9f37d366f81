"""``strokeseg benchmark table``: train and evaluate every row of one of the paper's tables."""

from __future__ import annotations

import argparse
from pathlib import Path

from strokeseg.commands.options import (
    add_metrics_options,
    add_output,
    add_overrides,
    positive_int,
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "benchmark",
        help="reproduce a table of the paper (train + evaluate every row)",
        description="Reproduce one of the paper's tables on a dataset.",
    )
    sub = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    t = sub.add_parser(
        "table",
        help="Table 1 (CT baselines), 2 (ablation) or 3 (ATLAS baselines)",
        description="Train every row of the table with each seed, evaluate it on the test "
        "split (or by K-fold cross-validation), time its inference, and write OUT/tableN.md "
        "(with paired per-subject differences against UNet++), OUT/tableN_forest.png, "
        "OUT/tableN_paired.json and OUT/runs.json. Finished runs in OUT are re-used, so an "
        "interrupted benchmark continues where it stopped; --fold and --rows run a part alone "
        "(e.g. one cluster job each), a later call without --fold gathers the table.",
    )
    t.add_argument("--table", type=int, choices=(1, 2, 3), required=True)
    t.add_argument("--data", type=Path, required=True, help="dataset folder")
    add_output(t, "output folder", default=Path("benchmark"))
    t.add_argument(
        "--profile",
        choices=("paper", "cpu"),
        default="paper",
        help="paper: the paper's recipe (GPU; refused without one unless --force); "
        "cpu: reduced, fits 2 CPU cores",
    )
    t.add_argument("--force", action="store_true", help="run --profile paper even without a GPU")
    t.add_argument("--seeds", type=positive_int, default=1, help="seeds per row (default 1)")
    t.add_argument(
        "--folds",
        type=positive_int,
        metavar="K",
        help="K-fold cross-validation: folds stratified by lesion volume, once per seed, "
        "shared by every row; each subject is tested once per seed",
    )
    t.add_argument(
        "--fold", type=int, metavar="I", help="run only fold I (0..K-1); writes no table"
    )
    t.add_argument(
        "--rows",
        type=lambda text: [r.strip() for r in text.split(",") if r.strip()],
        metavar="NAME,NAME",
        help="run only these rows (model names; the table then holds them only)",
    )
    add_metrics_options(t)
    add_overrides(t, "override every row's config after the profile (repeatable)")
    t.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from strokeseg.data.folds import check_fold

    check_fold(args.folds, args.fold, every_fold=True)
    from strokeseg.jobs.benchmark import run_table

    path = run_table(
        args.table,
        args.data,
        args.out,
        args.profile,
        args.seeds,
        args.overrides,
        folds=args.folds,
        fold=args.fold,
        rows=args.rows,
        connectivity=args.connectivity,
        metrics=args.metrics,
        force=args.force,
    )
    if path is None:
        print(f"fold {args.fold} done; run again without --fold to gather the table")
    else:
        print(path.read_text(encoding="utf-8"))
    return 0
