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
        "(lesion ids) with its ITK-SNAP/Slicer colour tables, lesions_by_lesion.csv and "
        "territories.csv (vascular territories on template-grid scans; docs/reports.md)",
    )
    p.add_argument(
        "--probabilities",
        action="store_true",
        help="also write <scan>_probabilities.nii.gz (float32 in [0, 1], the mask's geometry)",
    )
    p.add_argument(
        "--part",
        type=int,
        metavar="I",
        help="with --parts N: segment only every N-th scan from the I-th (sorted; I in "
        "0..N-1), one job each; `strokeseg gather` then writes lesions.csv",
    )
    p.add_argument("--parts", type=int, metavar="N", help="number of jobs sharing the folder")
    add_inference_options(p)
    p.set_defaults(run=run)


def split(args: argparse.Namespace) -> tuple[int, int]:
    """(I, N) of ``--part I --parts N``; (0, 1) without them."""
    from strokeseg.errors import StrokesegError

    if args.part is None and args.parts is None:
        return 0, 1
    if args.part is None or args.parts is None or args.parts < 1:
        raise StrokesegError("--part I and --parts N go together, with N >= 1")
    if not 0 <= args.part < args.parts:
        raise StrokesegError(
            f"--part {args.part}: must be 0..{args.parts - 1} for --parts {args.parts}"
        )
    return args.part, args.parts


def run(args: argparse.Namespace) -> int:
    import sys

    from strokeseg.inference.ensemble import load_predictor
    from strokeseg.inference.predict import predict

    part = split(args)
    predictor, _ = load_predictor(args.checkpoint, inference_options(args))
    report = None
    if args.report:
        from strokeseg.inference.predict import scan_inputs
        from strokeseg.reports.scan import RunReport

        threshold = predictor.rule.threshold
        checkpoints = ", ".join(str(c) for c in args.checkpoint)
        replace = args.overwrite or args.skip_existing  # as predict's own outputs
        report = RunReport(args.out, predictor.meta, checkpoints, replace, threshold)
        names = [name for name, _ in scan_inputs(args.input)][part[0] :: part[1]]
        report.check(names, run_files=part[1] == 1)
    rows, errors = predict(
        args.input,
        args.out,
        predictor,
        overwrite=args.overwrite,
        skip_existing=args.skip_existing,
        probabilities=args.probabilities,
        part=part,
        on_scan=report.record if report else None,
        on_kept=report.adopt if report else None,
    )
    if part[1] > 1:
        print(f"part {part[0]} of 0..{part[1] - 1} done; `strokeseg gather` writes lesions.csv")
    elif report and rows:
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
