"""Peak memory of ``strokeseg evaluate --checkpoint`` against the number of subjects.

Writes the largest cohort once (plain folders ``images/`` and ``masks/``: a noisy head of
``--shape`` voxels with a dark spherical lesion per subject), trains a tiny checkpoint on it for
a few steps (``configs/tiny.yaml``, one epoch of two batches) unless ``--checkpoint`` is given,
then, for each ``--sizes`` N, evaluates the checkpoint on the first N subjects through the CLI
(``--subjects all``: per-subject CSVs, overlays, report.html) in a fresh process, and prints its
peak resident memory (``ru_maxrss``) and wall time. Memory that stays flat from 20 to 200
subjects is what streaming the subjects is for. The evaluating process imports strokeseg from
``PYTHONPATH``, so the same command compares two versions of the code on the same cohort.

    python benchmarks/evaluate_memory.py [--sizes 20 200] [--shape 160 160 8] [--work DIR]
        [--checkpoint CKPT]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np

CHILD = """
import resource, sys
from strokeseg.cli import main
code = main(sys.argv[1:])
print("peak_rss_mib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
sys.exit(code)
"""


def subject(seed: int, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A noisy head with one dark ellipsoidal lesion."""
    rng = np.random.default_rng(seed)
    image = rng.normal(100, 5, shape).astype(np.float32)
    x, y, z = np.ogrid[: shape[0], : shape[1], : shape[2]]
    cx, cy = rng.integers(shape[0] // 4, 3 * shape[0] // 4, 2)
    cz, r = rng.integers(shape[2] // 4, 3 * shape[2] // 4), rng.integers(5, 12)
    mask = ((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 * 4 <= r**2).astype(np.uint8)
    image[mask == 1] -= 40
    return image, mask


def write_cohort(root: Path, n: int, shape: tuple[int, int, int]) -> None:
    for i in range(n):
        for folder, data in zip(("images", "masks"), subject(i, shape), strict=True):
            path = root / folder / f"case{i:04d}.nii.gz"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                nib.save(nib.Nifti1Image(data, np.eye(4)), path)


def cohort(work: Path, n: int) -> Path:
    """The first ``n`` subjects of the written cohort, linked into a folder of their own."""
    root = work / f"cohort{n}"
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            link = root / folder / f"case{i:04d}.nii.gz"
            if not link.exists():
                link.symlink_to(work / "all" / folder / link.name)
    return root


def measure(args: list[str]) -> dict:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"evaluate failed: {done.stderr[-2000:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("peak_rss_mib"))
    return {"peak_rss_mib": float(line.split()[1]), "wall_s": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 200])
    parser.add_argument("--shape", type=int, nargs=3, default=[160, 160, 8])
    parser.add_argument("--work", type=Path, default=Path("evaluate_memory"))
    parser.add_argument("--checkpoint", type=Path)
    args = parser.parse_args()
    shape = tuple(args.shape)
    write_cohort(args.work / "all", max(args.sizes), shape)
    checkpoint = args.checkpoint
    if checkpoint is None:
        run = args.work / "run"
        checkpoint = run / "best.ckpt"
        if not checkpoint.exists():
            train = ["train", "--config", "tiny", "--data", cohort(args.work, 10), "--out", run]
            train += ["--set", "optim.epochs=1", "--set", "trainer.limit_train_batches=2"]
            measure([str(a) for a in train])
    rows = []
    for n in args.sizes:
        out = args.work / f"evaluation{n}"
        evaluate = ["evaluate", "--checkpoint", checkpoint, "--data", cohort(args.work, n)]
        evaluate += ["--subjects", "all", "--out", out, "--overwrite"]
        rows.append({"subjects": n, **measure([str(a) for a in evaluate])})
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n| subjects ({'x'.join(map(str, shape))}) | peak RSS MiB | wall s |\n|---:|---:|---:|")
    for r in rows:
        print(f"| {r['subjects']} | {r['peak_rss_mib']:.0f} | {r['wall_s']:.0f} |")


if __name__ == "__main__":
    main()
