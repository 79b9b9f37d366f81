"""Post-processing grids compared offline on finished demo runs: the rule fitted on each run's
validation subjects with each threshold grid, scored on its test subjects.

Each ``DEMO`` is a ``strokeseg demo --out DEMO`` folder (``DEMO/run/best.ckpt``,
``DEMO/run/split.json``, ``DEMO/data``). The checkpoint segments every validation and test
subject once (no post-processing); :func:`strokeseg.inference.postprocess.choose` fits the
threshold and minimum lesion volume on the validation subjects for each grid, and the table
gives the mean per-subject Dice and lesion-wise F1 of that rule on the test subjects.

    python benchmarks/postprocess_grid.py DEMO [DEMO ...] [--objective dice_f1]
        [--grids 0.3,0.4,0.5,0.6,0.7 0.05,0.1,0.15,0.2,0.25,0.3,0.4,0.5,0.6,0.7]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from strokeseg.data.layouts import find_dataset
from strokeseg.data.splits import load_split
from strokeseg.inference.ensemble import load_predictor
from strokeseg.inference.options import InferenceOptions
from strokeseg.inference.postprocess import apply, choose
from strokeseg.jobs.train import subject_cases
from strokeseg.training.config import PostprocessConfig


def cases(demo: Path) -> dict[str, list]:
    """(probability, mask, voxel mm3) of each validation and test subject of a demo run."""
    options = InferenceOptions(postprocess=False)
    predictor = load_predictor([demo / "run" / "best.ckpt"], options)[0]
    dataset = find_dataset(demo / "data", predictor.data.layout)
    split = load_split(demo / "run" / "split.json")
    return {part: subject_cases(predictor, dataset, split[part]) for part in ("val", "test")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demos", type=Path, nargs="+")
    parser.add_argument("--objective", default="dice_f1", choices=["dice", "dice_f1"])
    parser.add_argument(
        "--grids",
        nargs="+",
        default=["0.3,0.4,0.5,0.6,0.7", "0.05,0.1,0.15,0.2,0.25,0.3,0.4,0.5,0.6,0.7"],
        help="threshold grids, comma-separated",
    )
    args = parser.parse_args()
    grids = [[float(t) for t in g.split(",")] for g in args.grids]
    sizes = PostprocessConfig().min_lesion_mm3
    print("| run | grid | rule (threshold, mm3) | test Dice | test lesion-wise F1 |")
    print("|---|---|---|---:|---:|")
    means = np.zeros((len(grids), 2))
    for demo in args.demos:
        subjects = cases(demo)
        for g, grid in enumerate(grids):
            rule, _, _ = choose(subjects["val"], grid, sizes, args.objective)
            # the fitted rule's test masks, scored by choose's own scorer (one candidate)
            masks = [(apply(p, mm3, rule), t, mm3) for p, t, mm3 in subjects["test"]]
            _, scores, _ = choose(masks, [0.5], [0.0])
            means[g] += scores["dice"], scores["f1"]
            print(
                f"| {demo} | {grid[0]:g}-{grid[-1]:g} | {rule.threshold:g}, "
                f"{rule.min_lesion_mm3:g} | {scores['dice']:.3f} | {scores['f1']:.3f} |",
                flush=True,
            )
    for g, grid in enumerate(grids):
        dice, f1 = means[g] / len(args.demos)
        print(f"| **mean** | {grid[0]:g}-{grid[-1]:g} | | {dice:.3f} | {f1:.3f} |")


if __name__ == "__main__":
    main()
