"""``strokeseg check``: validate a dataset folder before training on it.

Modelled on nnU-Net's dataset integrity check: every subject is read in full, so unreadable
files, NaN/Inf voxels, wrong dimensionality, image/mask shape or affine disagreement and
non-binary masks are all reported, each as one line naming the file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "check",
        help="validate a dataset folder: layout, subjects, slices, lesion statistics, problems",
        description="Find the dataset layout, read every subject and report subjects, axial "
        "slices, lesion volumes and every problem found. Exits 1 if there is any problem.",
    )
    p.add_argument("--data", type=Path, required=True, help="dataset folder")
    p.add_argument(
        "--layout",  # checked against strokeseg.data.layouts.LAYOUTS, the one list
        help="skip detection and read the folder as this layout (docs/data.md lists them)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(run=run)


def summarize(root: Path, layout: str | None = None) -> dict:
    """Read every subject of the dataset at ``root`` and collect statistics and problems."""
    import numpy as np
    from tqdm import tqdm

    from strokeseg.data import find_dataset, load_subject
    from strokeseg.errors import StrokesegError

    dataset = find_dataset(root, layout)
    problems = list(dataset.problems)
    slices, volumes_ml, empty, labelled = 0, [], [], 0
    for subject in tqdm(dataset.subjects, desc="check", unit="subject", disable=None):
        try:
            image, mask = load_subject(subject)
        except StrokesegError as error:
            problems.append(str(error))
            continue
        slices += image.data.shape[2]
        if mask is None:
            continue
        labelled += 1
        volumes_ml.append(float(mask.sum(dtype=np.int64)) * image.voxel_mm3 / 1000)
        if volumes_ml[-1] == 0:
            empty.append(subject.id)
    lesions = None
    if volumes_ml:
        lesions = {
            "min": min(volumes_ml),
            "median": float(np.median(volumes_ml)),
            "max": max(volumes_ml),
        }
    return {
        "root": str(dataset.root),
        "layout": dataset.layout,
        "modality": dataset.modality,
        "subjects": len(dataset.subjects),
        "sites": _sites(dataset.subjects),
        "labelled": labelled,
        "slices": slices,
        "lesion_volume_ml": lesions,
        "empty_masks": empty,
        "problems": problems,
    }


def _sites(subjects) -> dict[str, int]:
    """Subjects per acquisition site, where the layout names sites (ATLAS)."""
    sites: dict[str, int] = {}
    for subject in subjects:
        if subject.site:
            sites[subject.site] = sites.get(subject.site, 0) + 1
    return dict(sorted(sites.items()))


def _text(report: dict) -> str:
    n, labelled = report["subjects"], report["labelled"]
    lines = [
        f"layout:    {report['layout']} ({report['modality']}) in {report['root']}",
        f"subjects:  {n} ({labelled} with a readable mask)",
    ]
    if report["sites"]:
        shown = ", ".join(f"{site} {count}" for site, count in report["sites"].items())
        lines.append(f"sites:     {len(report['sites'])} ({shown})")
    lines.append(f"slices:    {report['slices']} axial")
    if report["lesion_volume_ml"]:
        v = report["lesion_volume_ml"]
        lines.append(f"lesion mL: min {v['min']:.3g}  median {v['median']:.3g}  max {v['max']:.3g}")
    empty = report["empty_masks"]
    lines.append(f"empty masks: {len(empty)}" + (f" ({', '.join(empty)})" if empty else ""))
    lines.append(f"problems:  {len(report['problems'])}")
    lines += [f"  {p}" for p in report["problems"]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import sys

    report = summarize(args.data, args.layout)
    print(json.dumps(report, indent=2) if args.json else _text(report))
    if report["problems"]:
        print(
            f"strokeseg check: {len(report['problems'])} problem(s) in {args.data}", file=sys.stderr
        )
        return 1
    return 0
