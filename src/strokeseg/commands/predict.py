"""``strokeseg predict``: lesion masks and volumes for NIfTI/DICOM scans from a checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from strokeseg.commands.options import add_inference_options, add_output, inference_options


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "predict",
        help="segment scans: <scan>_mask.nii.gz per scan and lesions.csv",
        description="Segment each scan (a NIfTI file, a folder of them, or a DICOM series "
        "folder). Masks are uint8 {0,1} in the scan's own geometry; lesions.csv holds lesion "
        "volume (mL) and count (26-connected components). Research use only.",
    )
    p.add_argument("-i", "--input", type=Path, required=True, help="scan file or folder")
    add_output(p, "output folder", required=True)
    p.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        required=True,
        metavar="CKPT",
        help="best.ckpt or last.ckpt; repeat it, or give a folder of runs (e.g. a "
        "cross-validated benchmark's ROW/seed0), for an ensemble of their mean probability",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument(
        "--skip-existing",
        action="store_true",
        help="keep masks a previous (interrupted) run wrote; segment only the rest",
    )
    p.add_argument(
        "--report",
        action="store_true",
        help="also write report.html (index), <scan>_report.html, <scan>_lesions.nii.gz "
        "(lesion ids) and lesions_by_lesion.csv (docs/reports.md)",
    )
    p.add_argument(
        "--probabilities",
        action="store_true",
        help="also write <scan>_probabilities.nii.gz (float32 in [0, 1], the mask's geometry)",
    )
    add_inference_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from strokeseg.inference.ensemble import ensemble_predictor
    from strokeseg.inference.predict import predict

    predictor, _ = ensemble_predictor(args.checkpoint, **inference_options(args))
    report = None
    if args.report:
        from strokeseg.inference.predict import scan_inputs
        from strokeseg.reports.scan import RunReport

        threshold = predictor.rule.threshold
        checkpoints = ", ".join(str(c) for c in args.checkpoint)
        report = RunReport(args.out, predictor.meta, checkpoints, args.overwrite, threshold)
        report.check([name for name, _ in scan_inputs(args.input)])
    rows, errors = predict(
        args.input,
        args.out,
        predictor,
        overwrite=args.overwrite,
        skip_existing=args.skip_existing,
        probabilities=args.probabilities,
        on_scan=report.add if report else None,
    )
    if report and rows:
        report.finish()
        print(f"wrote {args.out / 'report.html'}")
    for row in rows:
        print(f"{row.scan}: {row.volume_ml:.2f} mL in {row.count} lesion(s)")
    if errors:
        print(
            f"strokeseg predict: {len(errors)} scan(s) failed, {len(rows)} written", file=sys.stderr
        )
        return 1
    return 0
