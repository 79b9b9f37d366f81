"""Where does a checkpoint miss lesions, and where does it find lesions that are not there?

Segments every subject of a labelled dataset (``strokeseg evaluate``'s reader; scans on the
MNI152 grid, or any grid whose affine gives MNI-like millimetres) and pools, over subjects,
each true lesion voxel's answer (p >= 0.5, no post-processing) by where it lies: its height
(MNI z, mm) and its distance from the midline (|MNI x|, mm). Printed: the true lesion volume
(mL) in each cell, the share of it found (recall), and the false-positive volume per subject
by height. A cell with no true lesion prints ``-``.

    python benchmarks/misses.py --checkpoint RUN/best.ckpt --data COHORT [--subjects all]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from strokeseg.data.layouts import find_dataset, load_subject
from strokeseg.inference.ensemble import load_predictor
from strokeseg.inference.options import InferenceOptions

HEIGHTS = (-80, -20, 5, 30, 55, 90)
"""MNI z band edges (mm): skull base and cerebellum, basal ganglia level, above the ventricles'
roof, the centrum semiovale, the vertex."""
MIDLINE = (0, 5, 15, 30, 50, 90)
"""|MNI x| band edges (mm)."""


def world_coordinates(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """(3, X, Y, Z) world coordinates (mm) of every voxel centre."""
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    xyz = affine[:3, :3] @ ijk + affine[:3, 3:4]
    return xyz.reshape((3, *shape)).astype(np.float32)


def band(values: np.ndarray, edges: tuple[int, ...]) -> np.ndarray:
    """Band index of each value (0 .. len(edges) - 2; values outside clip to the end bands)."""
    return np.clip(np.digitize(values, edges[1:-1]), 0, len(edges) - 2)


def tally(
    prob: np.ndarray, truth: np.ndarray, affine: np.ndarray, voxel_ml: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true volume, found volume) per (height, midline) cell and false-positive volume per
    height band (mL) of one subject."""
    x, _, z = world_coordinates(truth.shape, affine)
    rows, cols = band(z, HEIGHTS), band(np.abs(x), MIDLINE)
    cells = (len(HEIGHTS) - 1, len(MIDLINE) - 1)
    found = prob >= 0.5
    flat = np.ravel_multi_index((rows[truth], cols[truth]), cells)
    true_ml = np.bincount(flat, minlength=np.prod(cells)).reshape(cells) * voxel_ml
    hit = np.bincount(flat, weights=found[truth], minlength=np.prod(cells)).reshape(cells)
    false = found & ~truth
    false_ml = np.bincount(rows[false], minlength=cells[0]) * voxel_ml
    return true_ml, hit * voxel_ml, false_ml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--subjects", default="all", help="comma-separated ids, or all")
    args = parser.parse_args()
    predictor, _ = load_predictor([args.checkpoint], InferenceOptions())
    subjects = find_dataset(args.data).subjects
    if args.subjects != "all":
        wanted = set(args.subjects.split(","))
        subjects = [s for s in subjects if s.id in wanted]
    true_ml = found_ml = false_ml = 0.0
    for subject in subjects:
        image, truth = load_subject(subject)
        prob = predictor.probabilities(predictor.prepare(image))
        t, f, fp = tally(prob, truth > 0, image.affine, image.voxel_mm3 / 1000)
        true_ml, found_ml, false_ml = true_ml + t, found_ml + f, false_ml + fp
    print(f"{len(subjects)} subjects of {args.data}, {args.checkpoint}, p >= 0.5")
    header = " | ".join(f"|x| {a}-{b}" for a, b in zip(MIDLINE, MIDLINE[1:], strict=False))
    print(f"| MNI z (mm) | {header} | false positive mL per subject |")
    print("|---|" + "---:|" * len(MIDLINE))
    for i, (low, high) in enumerate(zip(HEIGHTS, HEIGHTS[1:], strict=False)):
        cells = [
            f"{t:.1f} mL, {f / t:.2f}" if t > 0 else "-"
            for t, f in zip(true_ml[i], found_ml[i], strict=True)
        ]
        false = false_ml[i] / len(subjects)
        print(f"| {low} to {high} | " + " | ".join(cells) + f" | {false:.2f} |")
    print(f"overall recall {found_ml.sum() / true_ml.sum():.3f} of {true_ml.sum():.1f} mL")


if __name__ == "__main__":
    main()
