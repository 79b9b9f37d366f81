"""Statistics of a template-space SynthATLAS cohort beside the figures they stand in for.

Prints, for a cohort folder (``strokeseg synth atlas --out DIR``): lesion volumes (per
subject, percentiles), hemispheres, the vascular territory holding most of each subject's
lesion volume (Arterial Atlas, grouped), and each image's left-right asymmetry inside the
brain (1 - correlation of the image with its mirror about x = 0 mm; the symmetric template
scores about 0). With ``--deformation N``, the realised displacement of N subjects' sampling
maps (``synth/deform.py``) over the brain.

    python benchmarks/cohort_stats.py DIR [--deformation 8]
"""

from __future__ import annotations

import argparse
import csv
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np

from strokeseg.reports.territories import atlas_ids, territories
from strokeseg.synth.anatomy import ANATOMIES, load_template
from strokeseg.synth.deform import subject_coords
from strokeseg.synth.lesions import Lesions

GROUPS = ("ACA", "MCA", "PCA", "lenticulostriate", "thalamoperforators", "basilar", "cerebellar")


def group(territory_id: int) -> str:
    if territory_id == 0:
        return "outside atlas"
    short = territories()[territory_id].short
    return next((g for g in GROUPS if g in short), short.rsplit(" ", 1)[0])


def asymmetry(image: np.ndarray, brain: np.ndarray) -> float:
    """1 - corr(image, its mirror about x = 0) inside the brain; the grid (197 wide, x = 0 at
    voxel 98) mirrors onto itself."""
    mirrored = image[::-1]
    keep = brain & brain[::-1]
    return 1.0 - float(np.corrcoef(image[keep], mirrored[keep])[0, 1])


def cohort(folder: Path) -> None:
    rows = list(csv.DictReader((folder / "participants.tsv").open(), delimiter="\t"))
    brain = load_template("sym").brain
    volumes, sides, groups, asym = [], Counter(), Counter(), {}
    for row in rows:
        sid = row["participant_id"]
        anat = folder / sid / "ses-1" / "anat"
        mask_img = nib.load(next(anat.glob("*_mask.nii.gz")))
        mask = np.asarray(mask_img.dataobj) > 0
        volumes.append(mask.sum() / 1000.0)
        sides[row["hemisphere"]] += 1
        world = np.argwhere(mask) @ mask_img.affine[:3, :3].T + mask_img.affine[:3, 3]
        counts = Counter(group(int(i)) for i in atlas_ids(world))
        groups[counts.most_common(1)[0][0]] += 1
        image = np.asarray(nib.load(next(anat.glob("*_T1w.nii.gz"))).dataobj, np.float32)
        asym.setdefault(row.get("anatomy", "sym"), []).append(asymmetry(image, brain & ~mask))
    v = np.array(volumes)
    print(f"{len(rows)} subjects in {folder}")
    print("| lesion volume (mL) | min | 10 % | median | 90 % | max | under 1 mL |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    q = np.percentile(v, [0, 10, 50, 90, 100])
    print("| this cohort | " + " | ".join(f"{x:.2f}" for x in q) + f" | {np.mean(v < 1):.0%} |")
    print("| ATLAS R2.0 (655 training masks, published) | 0.01 | | 5 (median) | | 497 | |")
    print("\nhemisphere: " + ", ".join(f"{k} {n}" for k, n in sorted(sides.items())))
    print("main territory: " + ", ".join(f"{k} {n}" for k, n in groups.most_common()))
    print("\n| anatomy | subjects | asymmetry, mean (min-max) |\n|---|---:|---:|")
    for name, values in sorted(asym.items()):
        spread = f"{np.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})"
        print(f"| {name} | {len(values)} | {spread} |")
    for name in ANATOMIES:
        template = load_template(name)
        print(f"| template {name}, no subject changes | 1 | {asymmetry(template.t1, brain):.3f} |")


def deformation(n: int) -> None:
    print("\n| subject | median (mm) | 95 % (mm) | max (mm) |\n|---:|---:|---:|---:|")
    template = load_template("sym")
    head = (slice(10, 187), slice(10, 223), slice(5, 184))
    empty = Lesions(np.zeros(template.shape, np.float32), None, (slice(0, 0),) * 3, "-", 0)
    grid = np.stack(np.meshgrid(*[np.arange(s.start, s.stop) for s in head], indexing="ij"))
    inside = template.brain[head]
    for i in range(n):
        rng = np.random.default_rng([0, i, 9])
        coords = subject_coords(rng, template, head, empty, atrophy=bool(i % 3 == 0))
        shift = np.linalg.norm(coords - grid, axis=0)[inside]
        q = np.percentile(shift, [50, 95, 100])
        print(f"| {i} | {q[0]:.1f} | {q[1]:.1f} | {q[2]:.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--deformation", type=int, default=0, metavar="N")
    args = parser.parse_args()
    cohort(args.folder)
    if args.deformation:
        deformation(args.deformation)
