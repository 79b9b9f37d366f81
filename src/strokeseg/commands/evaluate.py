"""``strokeseg evaluate``: score masks against masks, or a trained model on a test split.

Matching rule for ``--pred``/``--gt``: see :mod:`strokeseg.evaluation.matching`.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from strokeseg.commands.options import add_output


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="score masks: per-subject CSV and summary JSON",
        description="Compare predicted lesion masks with ground-truth masks: per-subject 3D Dice, "
        "IoU, absolute volume difference (mL), lesion-wise F1 (26-connected lesions) and "
        "lesion-count difference, with mean/std and pooled Dice/IoU. Writes "
        "OUT/per_subject.csv and OUT/summary.json. Definitions: docs/metrics.md.",
    )
    masks = p.add_argument_group("mask folders (predictions against ground truth)")
    masks.add_argument("--pred", type=Path, metavar="DIR", help="predicted masks")
    masks.add_argument("--gt", type=Path, metavar="DIR", help="ground-truth masks")
    model = p.add_argument_group("a trained model on a dataset's test split")
    model.add_argument("--checkpoint", type=Path, metavar="CKPT", help="best.ckpt of a run")
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
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(run=run)


def _summary_table(summary: dict) -> str:
    lines = [
        f"{summary['n_subjects']} subject(s), empty policy {summary['empty_policy']!r}",
        f"{'metric':<40}{'mean':>10}{'std':>10}",
    ]
    for label, key in (
        ("Dice, per-subject 3D (headline)", "dice"),
        ("IoU, per-subject 3D", "iou"),
        ("Dice, per-slice (slices with lesion)", "slice_dice"),
        ("lesion-wise F1", "lesion_f1"),
        ("absolute volume difference (mL)", "abs_volume_difference_ml"),
        ("lesion count difference", "lesion_count_difference"),
    ):
        lines.append(f"{label:<40}{summary[key + '_mean']:>10.4f}{summary[key + '_std']:>10.4f}")
    for label, key in (("Dice, pooled over subjects", "dice"), ("IoU, pooled", "iou")):
        lines.append(f"{label:<40}{summary[key + '_pooled']:>10.4f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from strokeseg.errors import StrokesegError
    from strokeseg.evaluation.matching import load_case, match_files
    from strokeseg.evaluation.report import check_writable, evaluate, write_report

    if args.checkpoint is not None or args.data is not None:
        if args.checkpoint is None or args.data is None or args.pred or args.gt:
            raise StrokesegError("evaluate: give --checkpoint CKPT --data DIR, or --pred --gt")
        from strokeseg.evaluation.model_eval import evaluate_checkpoint

        summary = evaluate_checkpoint(
            args.checkpoint,
            args.data,
            args.out,
            subjects=args.subjects,
            split_file=args.split,
            empty=args.empty,
            compare=args.compare,
            overwrite=args.overwrite,
        )
        print(_summary_table(summary))
        print(f"wrote {args.out}/per_subject.csv, summary.json, overlays/")
        return 0
    if args.pred is None or args.gt is None:
        raise StrokesegError("evaluate: give both --pred DIR and --gt DIR (or --checkpoint --data)")
    check_writable(args.out, overwrite=args.overwrite)
    matched = match_files(args.pred, args.gt)
    cases: Iterator = (load_case(*item) for item in tqdm(matched, desc="evaluate", disable=None))
    rows, summary = evaluate(cases, empty=args.empty)
    paths = write_report(rows, summary, args.out, overwrite=args.overwrite)
    print(_summary_table(summary))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
