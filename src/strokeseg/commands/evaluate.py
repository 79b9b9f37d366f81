"""``strokeseg evaluate``: score masks against masks, or a trained model on a test split.

Matching rule for ``--pred``/``--gt``: see :mod:`strokeseg.evaluation.matching`.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from strokeseg.commands.options import (
    add_inference_options,
    add_metrics_options,
    add_output,
    inference_options,
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="score masks: per-subject CSV and summary JSON",
        description="Compare predicted lesion masks with ground-truth masks: per-subject 3D Dice, "
        "IoU, absolute volume difference (mL, voxels), HD95 (mm), lesion-wise F1 (26- or "
        "6-connected lesions) and lesion-count difference, with mean/std and pooled Dice/IoU. "
        "Writes "
        "OUT/per_subject.csv and OUT/summary.json. Definitions: docs/metrics.md.",
    )
    masks = p.add_argument_group("mask folders (predictions against ground truth)")
    masks.add_argument("--pred", type=Path, metavar="DIR", help="predicted masks")
    masks.add_argument("--gt", type=Path, metavar="DIR", help="ground-truth masks")
    add_model_arguments(p.add_argument_group("a trained model on a dataset's test split"))
    add_output(
        p, "output folder (default: ./evaluation)", default=Path("evaluation"), metavar="DIR"
    )
    p.add_argument(
        "--empty",
        choices=("one", "nan", "zero"),
        default="one",
        help="Dice/IoU/F1 when both masks are empty: 1.0 (default), NaN = "
        "left out of means, or 0.0",
    )
    add_metrics_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(run=run)


def add_model_arguments(model) -> None:
    model.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        metavar="CKPT",
        help="best.ckpt of a run; repeat it, or give a folder of runs, for an ensemble of "
        "their mean probability (then pass --split or --subjects all)",
    )
    model.add_argument("--data", type=Path, metavar="DIR", help="the dataset folder")
    model.add_argument(
        "--subjects",
        choices=("test", "all"),
        default="test",
        help="the split's test subjects (default) or every labelled subject",
    )
    model.add_argument(
        "--split",
        type=Path,
        metavar="FILE",
        help="split.json (default: the one beside the checkpoint)",
    )
    model.add_argument(
        "--compare",
        type=Path,
        metavar="CKPT",
        help="a second checkpoint: OUT/fig2.png shows both side by side",
    )
    add_inference_options(model)


PRINTED = (
    "dice",
    "iou",
    "slice_dice",
    "lesion_f1",
    "abs_volume_difference_ml",
    "abs_volume_difference_voxels",
    "hd95_mm",
    "lesion_count_difference",
)


def _summary_table(summary: dict) -> str:
    from strokeseg.evaluation.report import LABELS

    board = summary.get("leaderboard")
    if board is not None:
        lines = [f"{summary['n_subjects']} subject(s), as {board['title']} scores them (mean)"]
        columns = [(label, value) for label, value in board.items() if label != "title"]
        lines += [f"{label:<44}{value:>10.4f}" for label, value in columns]
        return "\n".join(lines)
    lines = [
        f"{summary['n_subjects']} subject(s), empty policy {summary['empty_policy']!r}",
        f"{'metric':<40}{'mean':>10}{'std':>10}",
    ]
    for key in PRINTED:
        mean, std = summary[key + "_mean"], summary[key + "_std"]
        lines.append(f"{LABELS[key]:<40}{mean:>10.4f}{std:>10.4f}")
    for key in ("dice_pooled", "iou_pooled"):
        lines.append(f"{LABELS[key]:<40}{summary[key]:>10.4f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from strokeseg.errors import StrokesegError
    from strokeseg.evaluation.leaderboards import metric_preset
    from strokeseg.evaluation.matching import load_case, match_files
    from strokeseg.evaluation.report import check_writable, evaluate, write_report
    from strokeseg.reports import evaluation as html_report

    html_report.check_report_writable(args.out, args.overwrite)
    collector = html_report.OverlayCollector()

    if args.checkpoint is not None or args.data is not None:
        if args.checkpoint is None or args.data is None or args.pred or args.gt:
            raise StrokesegError("evaluate: give --checkpoint CKPT --data DIR, or --pred --gt")
        return run_checkpoint(args, collector)
    if args.pred is None or args.gt is None:
        raise StrokesegError("evaluate: give both --pred DIR and --gt DIR (or --checkpoint --data)")
    check_writable(args.out, overwrite=args.overwrite)
    metric_preset(args.metrics, args.connectivity)  # a conflicting setting, before any work
    matched = match_files(args.pred, args.gt)
    cases: Iterator = (
        collector.case(load_case(*item)) for item in tqdm(matched, desc="evaluate", disable=None)
    )
    rows, summary = evaluate(
        cases, empty=args.empty, connectivity=args.connectivity, metrics_preset=args.metrics
    )
    paths = write_report(rows, summary, args.out, overwrite=args.overwrite)
    paths.append(
        html_report.write_evaluation_report(
            args.out, rows, summary, collector, overwrite=args.overwrite
        )
    )
    print(_summary_table(summary))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def run_checkpoint(args: argparse.Namespace, collector) -> int:
    """``evaluate --checkpoint --data``: the job, its report.html and the printed summaries."""
    from strokeseg.jobs.evaluate import evaluate_checkpoint
    from strokeseg.reports import evaluation as html_report

    summary = evaluate_checkpoint(
        args.checkpoint,
        args.data,
        args.out,
        subjects=args.subjects,
        split_file=args.split,
        empty=args.empty,
        connectivity=args.connectivity,
        metrics=args.metrics,
        compare=args.compare,
        overwrite=args.overwrite,
        on_case=collector.add,
        options=inference_options(args),
    )
    rows = html_report.read_rows(args.out / "per_subject.csv")
    html_report.write_evaluation_report(
        args.out, rows, summary, collector, overwrite=args.overwrite
    )
    rule = summary["postprocess"]
    print(
        f"post-processed (threshold {rule['threshold']:g}, minimum lesion "
        f"{rule['min_lesion_mm3']:g} mm3; not in the paper):"
    )
    print(_summary_table(summary))
    print("raw (p >= 0.5):")
    print(_summary_table(summary["raw"]))
    print(f"wrote {args.out}/per_subject.csv, summary.json, report.html, overlays/")
    return 0
