"""``strokeseg bids BIDS_DIR OUT_DIR participant``: lesion masks as a BIDS derivatives dataset.

The positional arguments follow the BIDS-Apps convention (input dataset, output folder,
analysis level); only the participant level exists.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from strokeseg.commands.options import add_inference_options, inference_options


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "bids",
        help="segment a BIDS dataset into a BIDS derivatives dataset (BIDS-App convention)",
        description="Segment every sub-*/[ses-*/]anat/*_<suffix>.nii[.gz] scan of a BIDS "
        "dataset. OUT_DIR becomes a BIDS derivatives dataset: per scan a "
        "*_desc-lesion_mask.nii.gz with a JSON sidecar (checkpoint, threshold, volumes, "
        "warnings), a *_desc-lesion_dseg.nii.gz of lesion ids with its .tsv table, and an HTML "
        "report; report.html, lesions.csv and lesions_by_lesion.csv at the top. Research use "
        "only.",
    )
    p.add_argument("bids_dir", type=Path, metavar="BIDS_DIR", help="the input BIDS dataset")
    p.add_argument("output_dir", type=Path, metavar="OUT_DIR", help="the derivatives folder")
    p.add_argument("analysis_level", choices=("participant",), help="participant (the only level)")
    p.add_argument(
        "--participant-label",
        nargs="+",
        metavar="LABEL",
        help="only these participants (with or without the sub- prefix)",
    )
    p.add_argument("--checkpoint", type=Path, required=True, help="best.ckpt or last.ckpt")
    p.add_argument("--suffix", default="T1w", help="the scans' BIDS suffix (default T1w)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument(
        "--skip-existing",
        action="store_true",
        help="keep the scans a previous (interrupted) run wrote; segment only the rest",
    )
    add_inference_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from strokeseg.inference.ensemble import load_predictor
    from strokeseg.jobs.bids import run_app

    predictor, _ = load_predictor([args.checkpoint], inference_options(args))
    rows, errors = run_app(
        args.bids_dir,
        args.output_dir,
        predictor,
        str(args.checkpoint),
        suffix=args.suffix,
        labels=args.participant_label,
        overwrite=args.overwrite,
        skip_existing=args.skip_existing,
    )
    for row in rows:
        print(f"{row.scan}: {row.volume_ml:.2f} mL in {row.count} lesion(s)")
    print(f"wrote {args.output_dir}/report.html")
    if errors:
        print(f"strokeseg bids: {len(errors)} scan(s) failed, {len(rows)} written")
        return 1
    return 0
