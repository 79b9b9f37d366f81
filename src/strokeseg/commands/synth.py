"""``strokeseg synth``: write the embedded synthetic cohorts (SynthATLAS, SynthCT)."""

from __future__ import annotations

import argparse
import sys

from strokeseg.commands.options import add_output, positive_int

ATLAS_ONLY = {
    "volumes": "atlas",
    "lesions": "real",
    "anatomy": "mixed",
    "skull_stripped": 0.25,
    "space": "template",
}


def anatomies(text: str) -> str:
    """'mixed' or a comma-separated list of SynthATLAS anatomies (argparse type)."""
    from strokeseg.synth.anatomy import ANATOMIES

    names = text.split(",")
    if text != "mixed" and not all(name in ANATOMIES for name in names):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected 'mixed' or a comma-separated list of {', '.join(ANATOMIES)}"
        )
    return text


def share(text: str) -> float:
    """A fraction in [0, 1] (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a share between 0 and 1")
    return value


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "synth",
        help="write a synthetic stroke cohort (SynthATLAS T1 MRI or SynthCT)",
        description="Write a synthetic stroke cohort: 'atlas' gives T1w MRI in the ATLAS R2.0 "
        "BIDS layout (197x233x189, 1 mm, MNI152NLin2009aSym); 'ct' gives head CT in Hounsfield "
        "units (512x512, 24-32 slices of 4-5 mm) as an nnU-Net raw dataset. Deterministic for "
        "a seed. Synthetic lesions, not real pathology.",
    )
    p.add_argument("cohort", choices=("atlas", "ct"), help="which cohort to write")
    add_output(p, "output folder", required=True)
    p.add_argument("--subjects", type=positive_int, default=20, help="number of subjects (20)")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument(
        "--volumes",
        choices=("atlas", "loguniform"),
        default="atlas",
        help="SynthATLAS total lesion volume: 'atlas' (default) a log-normal fitted to ATLAS "
        "R2.0 (median 5 mL), 'loguniform' the first SynthATLAS draw (median 1.7 mL)",
    )
    p.add_argument(
        "--lesions",
        choices=("real", "ellipsoid", "none"),
        default="real",
        help="SynthATLAS lesion shapes: 'real' (default) the vendored SOOP stroke masks with a "
        "chronic T1 appearance, 'ellipsoid' random ellipsoid unions, 'none' stroke-free controls",
    )
    p.add_argument(
        "--anatomy",
        type=anatomies,
        default="mixed",
        help="SynthATLAS anatomy: 'mixed' (default) each subject draws the symmetric ICBM "
        "2009a template ('sym'), the asymmetric MNI152 2009 template ('asym') or a real "
        "person's registered T1w with skull ('chris'); or a comma-separated list of them",
    )
    p.add_argument(
        "--skull-stripped",
        type=share,
        default=0.25,
        metavar="SHARE",
        help="SynthATLAS share of brain-extracted images (0.25; 0 keeps every skull, 1 none)",
    )
    p.add_argument(
        "--space",
        choices=("template", "native"),
        default="template",
        help="SynthATLAS: 'template' (default) the MNI152 grid in ATLAS R2.0's layout, "
        "'native' each subject in a scanner pose, voxel size and orientation, brain-extracted, "
        "in ATLAS R3.0's layout (space-orig)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a previous cohort in --out")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from strokeseg.synth import atlas, ct
    from strokeseg.synth.lesions import VOLUME_DISTRIBUTIONS

    if args.cohort == "atlas":
        volumes = VOLUME_DISTRIBUTIONS[args.volumes]
        options = atlas.Options(args.lesions, args.anatomy, args.skull_stripped, args.space)
        atlas.generate(
            args.out, args.subjects, args.seed, args.overwrite, volumes=volumes, options=options
        )
    else:
        chosen = [
            f"--{k.replace('_', '-')}" for k, v in ATLAS_ONLY.items() if getattr(args, k) != v
        ]
        if chosen:
            print(f"strokeseg synth: {', '.join(chosen)}: for SynthATLAS only", file=sys.stderr)
            return 2
        ct.generate(args.out, args.subjects, args.seed, args.overwrite)
    print(f"wrote {args.subjects} synthetic {args.cohort} subject(s) to {args.out}")
    return 0
