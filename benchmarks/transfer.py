"""Does the demo recipe transfer? Train it on one SynthATLAS cohort, score it on others.

``run`` makes a 40-subject cohort (``--anatomy`` picks its anatomies: leave one out to test on
an anatomy never trained on), runs the demo's stages on it (``strokeseg demo``'s config, split
and post-processing fit; ``--set`` as for ``strokeseg demo``), then scores the checkpoint on
its own test split and on external cohorts made once under ``ROOT``:

- ``ext_chris``, ``ext_asym``: 16 subjects on one anatomy only (the real head; the asymmetric
  template), new lesions;
- ``ext_ellipsoid``: 16 subjects whose lesions come from the ellipsoid generator, a lesion
  source the recipe never trained on;
- ``ext_controls``: 16 stroke-free subjects (every predicted millilitre is false);
- the real native T1w ``../shared/data/anatomy/chris_t1.nii.gz`` (no known stroke), through
  ``predict`` and its registration, when that file is present;
- ``nat_template`` / ``nat_native``: 8 subjects on the real head, written on the template grid
  and as native ATLAS R3.0 scans (the registration path).

Every stage is skipped when its output exists, so an interrupted run resumes. ``table``
prints every run's figures (raw / post-processed means over subjects).

    python benchmarks/transfer.py run ROOT NAME --seed 1 [--anatomy sym,asym] [--set K=V ...]
    python benchmarks/transfer.py table ROOT
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

from strokeseg.jobs.demo import demo_config
from strokeseg.jobs.evaluate import evaluate_checkpoint
from strokeseg.jobs.train import train
from strokeseg.synth import atlas

REAL_T1 = Path(__file__).resolve().parents[2] / "shared" / "data" / "anatomy" / "chris_t1.nii.gz"
EXTERNAL = {  # name: (subjects, seed, options)
    "ext_chris": (16, 901, atlas.Options(anatomy="chris")),
    "ext_ellipsoid": (16, 902, atlas.Options(lesions="ellipsoid")),
    "ext_asym": (16, 903, atlas.Options(anatomy="asym")),
    "ext_controls": (16, 904, atlas.Options(lesions="none")),
    "nat_template": (8, 905, atlas.Options(anatomy="chris")),
    "nat_native": (8, 905, atlas.Options(anatomy="chris", space="native")),
}
METRICS = ("dice", "lesion_f1", "lesion_count_difference", "abs_volume_difference_ml")


def cohort(path: Path, subjects: int, seed: int, options: atlas.Options) -> Path:
    if not (path / "dataset_description.json").exists():
        atlas.generate(path, subjects, seed, overwrite=True, progress=False, options=options)
    return path


def score(checkpoint: Path, data: Path, out: Path, subjects: str = "all") -> None:
    if not (out / "summary.json").exists():
        evaluate_checkpoint(checkpoint, data, out, subjects=subjects, overlays=0, overwrite=True)


def run(root: Path, name: str, seed: int, anatomy: str, overrides: list[str]) -> None:
    out = root / name
    config = demo_config(overrides)
    data = cohort(out / "data", 40, seed, atlas.Options(anatomy=anatomy))
    checkpoint = out / "run" / "best.ckpt"
    if not checkpoint.exists():
        train(config, data, out / "run", overwrite=True)  # with its post-processing fit
    score(checkpoint, data, out / "evaluation", subjects="test")
    for ext, (subjects, ext_seed, options) in EXTERNAL.items():
        score(checkpoint, cohort(root / ext, subjects, ext_seed, options), out / f"eval_{ext}")
    predicted = out / "real_t1_native"
    if REAL_T1.is_file() and not (predicted / "lesions.csv").exists():
        subprocess.run(
            [sys.executable, "-m", "strokeseg.cli", "predict", "-i", REAL_T1, "-o", predicted,
             "--checkpoint", checkpoint, "--overwrite"],
            check=False,
        )  # fmt: skip


def table(root: Path) -> None:
    print("| run | cohort | " + " | ".join(METRICS) + " | predicted mL |")
    print("|---|---|" + "---:|" * (len(METRICS) + 1))
    for run_dir in sorted(p for p in root.iterdir() if (p / "run").is_dir()):
        for summary in sorted(run_dir.glob("*/summary.json")):
            s = json.loads(summary.read_text(encoding="utf-8"))
            raw = s.get("raw", s)
            cells = [f"{raw[m + '_mean']:.3f} / {s[m + '_mean']:.3f}" for m in METRICS]
            rows = list(csv.DictReader((summary.parent / "per_subject.csv").open()))
            predicted = sum(float(r["pred_volume_ml"]) for r in rows) / len(rows)
            cohort_name = summary.parent.name.removeprefix("eval_")
            print(
                f"| {run_dir.name} | {cohort_name} | " + " | ".join(cells) + f" | {predicted:.2f} |"
            )
        real = run_dir / "real_t1_native" / "lesions.csv"
        if real.exists():
            row = next(csv.DictReader(real.open()))
            print(
                f"| {run_dir.name} | real T1w, native, no stroke | | | | | "
                f"{float(row['lesion_volume_ml']):.2f} ({row['lesion_count']} lesions) |"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run")
    p.add_argument("root", type=Path)
    p.add_argument("name")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--anatomy", default="mixed")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    t = sub.add_parser("table")
    t.add_argument("root", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        run(args.root, args.name, args.seed, args.anatomy, args.set)
    else:
        table(args.root)
