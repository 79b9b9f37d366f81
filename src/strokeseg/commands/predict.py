"""``strokeseg predict``: lesion masks and volumes for NIfTI/DICOM scans from a checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from strokeseg.commands.options import add_output


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
    p.add_argument("--checkpoint", type=Path, required=True, help="best.ckpt or last.ckpt")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument(
        "--skip-existing",
        action="store_true",
        help="keep masks a previous (interrupted) run wrote; segment only the rest",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from strokeseg.inference.checkpoint import load_network
    from strokeseg.inference.predict import predict

    network, meta = load_network(args.checkpoint)
    rows, errors = predict(
        args.input,
        args.out,
        network,
        meta,
        overwrite=args.overwrite,
        skip_existing=args.skip_existing,
    )
    for row in rows:
        print(f"{row.scan}: {row.volume_ml:.2f} mL in {row.count} lesion(s)")
    if errors:
        print(
            f"strokeseg predict: {len(errors)} scan(s) failed, {len(rows)} written", file=sys.stderr
        )
        return 1
    return 0
