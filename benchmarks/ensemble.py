"""A fold ensemble against its members, on subjects none of them trained on.

Each member checkpoint (every ``best.ckpt`` below ``--checkpoints``, e.g. the five fold runs
of one benchmark row) and their ensemble (mean probability, ``strokeseg.inference.ensemble``)
are evaluated on the same subjects of another cohort through ``strokeseg evaluate``'s own code.
The table gives per-subject means, raw (p >= 0.5) and post-processed (each member its own
rule; the ensemble none when its members' rules differ), and the paired per-subject difference
of the ensemble against the members' mean and against the best member, with a 95 % bootstrap
interval and the Wilcoxon p.

    python benchmarks/ensemble.py --checkpoints bench/t2/unetpp/seed0 --data OTHER --out WORK
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from strokeseg.evaluation.stats import paired_comparison
from strokeseg.inference.ensemble import checkpoint_files
from strokeseg.jobs.benchmark import read_subjects
from strokeseg.jobs.evaluate import evaluate_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=Path, nargs="+", required=True)
    parser.add_argument("--data", type=Path, required=True, help="subjects no member trained on")
    parser.add_argument("--out", type=Path, required=True, help="work folder (evaluations)")
    args = parser.parse_args()
    members = checkpoint_files(args.checkpoints)
    runs = {f"member {i}": [m] for i, m in enumerate(members)} | {"ensemble": members}
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for name, files in runs.items():
        out = args.out / name.replace(" ", "")
        if not (out / "per_subject_raw.csv").exists():
            evaluate_checkpoint(files, args.data, out, subjects="all", overlays=0, overwrite=True)
        raw, final = (
            read_subjects(out / "per_subject_raw.csv"),
            read_subjects(out / "per_subject.csv"),
        )
        scores[name] = {
            "dice_raw": {s: v["dice"] for s, v in raw.items()},
            "dice": {s: v["dice"] for s, v in final.items()},
            "f1_raw": {s: v["lesion_f1"] for s, v in raw.items()},
            "f1": {s: v["lesion_f1"] for s, v in final.items()},
        }
    keys = ("dice_raw", "dice", "f1_raw", "f1")
    n = len(scores["ensemble"]["dice"])
    print(f"{len(members)} members, {n} subjects of {args.data}")
    print(f"{'':10s} " + " ".join(f"{k:>9s}" for k in keys))
    for name, values in scores.items():
        print(f"{name:10s} " + " ".join(f"{np.mean(list(values[k].values())):9.4f}" for k in keys))
    member_names = [name for name in scores if name != "ensemble"]
    print("\nensemble minus members, per subject (mean [95 % interval], Wilcoxon p)")
    for key in keys:
        subjects = sorted(scores["ensemble"][key])
        mean = {s: float(np.mean([scores[m][key][s] for m in member_names])) for s in subjects}
        best = max(member_names, key=lambda m: np.mean(list(scores[m][key].values())))
        for label, reference in (("members' mean", mean), (f"best ({best})", scores[best][key])):
            c = paired_comparison(reference, scores["ensemble"][key])
            print(
                f"{key:9s} vs {label:18s} {c.mean_difference:+.4f} "
                f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}]  p {c.p_value:.3g}"
            )


if __name__ == "__main__":
    main()
