"""Whole-scan prediction: speed, memory and the accuracy each fast path costs, in one run.

Part 1 (always): an ATLAS-sized SynthATLAS scan (197x233x189, 1 mm, MNI152 grid) and a SynthCT
scan (512x512, 4-5 mm slices), segmented by deployed UNet++ networks (random weights: the
cost does not depend on them) under each setting: crop on/off (``--no-crop`` is the exact
whole-volume path), runtime (eager NHWC, ONNX Runtime, torch.compile), test-time flips,
pruning level (UNet++ L1-L3), width and the convolutions' padding (``--paddings``: replicate,
the ``cpu`` profile's, by default; zeros, the official UNet++'s). Each setting runs in a fresh
process, so its peak resident memory (``ru_maxrss``, which counts torch's and ONNX Runtime's
native allocations) is its own. Wall seconds and CPU seconds (user + system, all threads) are
both given: on a shared machine the CPU seconds are the steadier figure.

Part 2 (with ``--checkpoint`` and ``--data``): the checkpoint's test subjects (``split.json``
beside it) segmented by the exact path and by each fast path; per subject, the Dice of each
fast path's mask against the exact path's, and each against the ground truth. Several
checkpoints (e.g. the folds of a cross-validated benchmark, each with its own test fold) are
also pooled: each fast path's Dice minus the exact path's over all their test subjects, with a
95 % bootstrap interval and the Wilcoxon p.

    python benchmarks/predict.py [--threads 2] [--quick] [--scans atlas ct] [--widths W ...]
        [--paddings zeros replicate] [--checkpoint C [C ...] --data D [D ...]]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

# scan, width, crop, runtime, TTA, pruning level, slices per batch
SETTINGS = [
    ("atlas", 1.0, False, "eager", "none", 4, 8),
    ("atlas", 1.0, True, "eager", "none", 4, 8),
    ("atlas", 1.0, True, "eager", "none", 4, 4),
    ("atlas", 1.0, True, "onnx", "none", 4, 8),
    ("atlas", 1.0, True, "onnx", "none", 4, 4),
    ("atlas", 0.5, False, "eager", "none", 4, 8),
    ("atlas", 0.5, True, "eager", "none", 4, 8),
    ("atlas", 0.25, False, "eager", "none", 4, 8),
    ("atlas", 0.25, True, "eager", "none", 4, 8),
    ("atlas", 0.25, True, "onnx", "none", 4, 8),
    ("atlas", 0.25, True, "onnx", "none", 4, 4),
    ("atlas", 0.25, True, "compile", "none", 4, 8),
    ("atlas", 0.25, True, "eager", "lr", 4, 8),
    ("atlas", 0.25, True, "eager", "none", 3, 8),
    ("atlas", 0.25, True, "eager", "none", 2, 8),
    ("atlas", 0.25, True, "eager", "none", 1, 8),
    ("ct", 1.0, False, "eager", "none", 4, 8),
    ("ct", 1.0, True, "eager", "none", 4, 8),
    ("ct", 1.0, True, "onnx", "none", 4, 4),
    ("ct", 0.25, False, "eager", "none", 4, 8),
    ("ct", 0.25, True, "eager", "none", 4, 8),
    ("ct", 0.25, True, "onnx", "none", 4, 8),
]
QUICK = [s for s in SETTINGS if s[1] != 0.5 and s[4] == "none" and s[5] == 4 and s[3] != "compile"]


def make_scans(folder: Path) -> dict[str, Path]:
    from strokeseg.synth import atlas, ct

    atlas.generate(folder / "atlas", subjects=1, seed=0, overwrite=False, progress=False)
    ct.generate(folder / "ct", subjects=1, seed=0, overwrite=False, progress=False)
    return {
        "atlas": next((folder / "atlas").rglob("*_T1w.nii.gz")),
        "ct": next((folder / "ct").rglob("*_0000.nii.gz")),
    }


def one_setting(spec: dict) -> dict:
    """Run in a fresh process. Eager: one scan. ONNX/compile: a first scan (with the export
    or compilation) and a next one."""
    import strokeseg
    from strokeseg.data.crop import whole_plan
    from strokeseg.data.io import load_volume
    from strokeseg.data.preprocessing import Preprocessing, prepare
    from strokeseg.inference.runtime import make_runtime
    from strokeseg.inference.slicing import Batching, scan_probabilities

    torch.manual_seed(0)
    volume = load_volume(Path(spec["scan"]))
    modality = "mri" if spec["name"] == "atlas" else "ct"
    model = strokeseg.create_model(
        "unetpp",
        width=spec["width"],
        norm="batch",
        padding=spec["padding"],
        deep_supervision=spec["level"] < 4,
    )
    network = strokeseg.deploy(model, level=spec["level"])
    run = make_runtime(network, spec["runtime"], spec["threads"])
    flips = {"none": ((),), "lr": ((), (3,))}[spec["tta"]]
    batching = Batching(flips, spec["batch"])
    times = []
    for _ in range(1 if spec["runtime"] == "eager" else 2):  # then set-up is in the first
        wall, cpu = time.perf_counter(), time.process_time()
        scan = prepare(volume, Preprocessing(modality))
        p = scan_probabilities([run], [network], scan, crop=spec["crop"], batching=batching)
        times.append((time.perf_counter() - wall, time.process_time() - cpu))
    plan = scan.plan if spec["crop"] else whole_plan(volume.data.shape)
    return {
        "first_s": times[0][0],
        "next_s": times[-1][0],
        "next_cpu_s": times[-1][1],
        "work": plan.work / whole_plan(volume.data.shape).work,
        "slices": len(plan.boxes),
        "lesion_voxels": int((p >= 0.5).sum()),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def speed_table(scans: dict[str, Path], threads: int, settings: list) -> None:
    print(
        "\n| scan | width | padding | crop | runtime | TTA | level | batch | slices | work "
        "| first scan s | next scan s | next scan CPU s | peak RSS MiB |\n"
        "|---|---:|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    for name, width, crop, runtime, tta, level, batch, padding in settings:
        spec = dict(
            name=name, scan=str(scans[name]), width=width, crop=crop, runtime=runtime,
            tta=tta, level=level, threads=threads, batch=batch, padding=padding,
        )  # fmt: skip
        done = subprocess.run(
            [sys.executable, __file__, "--one", json.dumps(spec)],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            failed = done.stderr[-300:]
            print(f"| {name} | {width} | {padding} | {crop} | {runtime} | failed: {failed} |")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"| {name} | {width} | {padding} | {'crop' if crop else 'no-crop'} | {runtime} | {tta} "
            f"| {level} | {batch} | {r['slices']} | {r['work']:.2f} | {r['first_s']:.1f} "
            f"| {r['next_s']:.1f} | {r['next_cpu_s']:.1f} | {r['peak_rss_mib']:.0f} |",
            flush=True,
        )


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def accuracy_table(
    checkpoint: Path,
    data: Path,
    threads: int,
    margins: list[float] | None = None,
    runtimes: tuple[str, ...] = ("eager", "onnx"),
) -> dict[str, dict[str, float]]:
    """Per test subject: Dice of each fast path against the exact path and the truth, raw
    (p >= 0.5) and under the checkpoint's post-processing. ``margins``: also the eager crop
    with these margins (mm) instead of the default (a convolutional network's own grid).
    Returns subject -> column -> value."""
    from strokeseg.data.crop import region_plan
    from strokeseg.data.layouts import find_dataset, load_subject
    from strokeseg.data.preprocessing import prepare
    from strokeseg.inference.checkpoint import load_network
    from strokeseg.inference.postprocess import RAW, Postprocess, apply
    from strokeseg.inference.runtime import make_runtime
    from strokeseg.inference.slicing import run_plan, scan_probabilities
    from strokeseg.jobs.evaluate import select_subjects

    network, meta = load_network(checkpoint)
    saved = meta.get("postprocess")
    rule = Postprocess(saved["threshold"], saved["min_lesion_mm3"]) if saved else RAW
    dataset = find_dataset(data, meta["data"].layout)
    subjects = select_subjects(dataset, checkpoint, "test", None)
    preprocessing = meta["data"].preprocessing
    zeroed = preprocessing.zero_outside_crop
    paths = {f"crop {kind}": (kind, True) for kind in runtimes}
    paths.update({f"crop {m:g} mm": ("eager", m) for m in margins or []})
    runs = {"exact": make_runtime(network, "eager", threads)}
    runs.update({name: make_runtime(network, kind, threads) for name, (kind, _) in paths.items()})
    print(
        f"\n{checkpoint} ({meta['model_name']} {meta['model_kwargs']}), {len(subjects)} test "
        f"subjects of {data}; exact = --no-crop, eager; raw = p >= 0.5, pp = the checkpoint's "
        f"post-processing {rule}; trained zero outside the crop: {zeroed}\n"
    )
    columns = ["exact: vs truth raw", "exact: vs truth pp"]
    for name in paths:
        columns += [f"{name}: vs exact raw", f"{name}: vs truth raw", f"{name}: vs truth pp"]
    print("| subject | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    sums = np.zeros(len(columns))
    table = {}
    for subject in subjects:
        image, truth = load_subject(subject)
        truth = truth.astype(bool)

        scan = prepare(image, preprocessing)

        def masks(run, crop, image=image, scan=scan):
            if isinstance(crop, bool):
                grid = meta["data"].slice_grid
                p = scan_probabilities([run], [network], scan, crop=crop, slice_grid=grid)
            else:  # a margin in mm
                plan = region_plan(scan.region, scan.spacing, crop)
                context = preprocessing.context_slices
                p = run_plan([run], scan.network_input(), plan, context)
            return p >= 0.5, apply(p, image.voxel_mm3, rule).astype(bool)

        exact, exact_pp = masks(runs["exact"], False)
        values = [dice(exact, truth), dice(exact_pp, truth)]
        for name, (_, crop) in paths.items():
            fast, fast_pp = masks(runs[name], crop)
            values += [dice(fast, exact), dice(fast, truth), dice(fast_pp, truth)]
        sums += values
        table[subject.id] = dict(zip(columns, values, strict=True))
        print(f"| {subject.id} | " + " | ".join(f"{v:.4f}" for v in values) + " |", flush=True)
    mean = sums / len(subjects)
    print("| **mean** | " + " | ".join(f"{v:.4f}" for v in mean) + " |")
    for i, name in enumerate(paths):
        raw, pp = mean[3 + 3 * i] - mean[0], mean[4 + 3 * i] - mean[1]
        print(f"{name}: mean Dice vs truth minus exact's: raw {raw:+.4f}, post-processed {pp:+.4f}")
    return table


def pooled_accuracy(tables: list[dict[str, dict[str, float]]]) -> None:
    """Over every (checkpoint, test subject): each fast path's Dice vs truth minus the exact
    path's, mean with a 95 % bootstrap interval over subjects and the Wilcoxon p."""
    from strokeseg.evaluation.stats import paired_comparison

    rows = {f"{i}/{s}": v for i, table in enumerate(tables) for s, v in table.items()}
    paths = [c.removesuffix(": vs exact raw") for c in next(iter(rows.values())) if "vs exact" in c]
    print(f"\nPooled over {len(rows)} test subjects of {len(tables)} checkpoints:")
    for name in paths:
        agree = np.mean([v[f"{name}: vs exact raw"] for v in rows.values()])
        cells = []
        for kind in ("raw", "pp"):
            c = paired_comparison(
                {k: v[f"exact: vs truth {kind}"] for k, v in rows.items()},
                {k: v[f"{name}: vs truth {kind}"] for k, v in rows.items()},
            )
            cells.append(
                f"{kind} {c.mean_difference:+.4f} [{c.ci_low:+.4f}, {c.ci_high:+.4f}], "
                f"p = {c.p_value:.2g}"
            )
        print(
            f"- {name}: mask Dice vs exact {agree:.3f}; Dice vs truth minus exact's: "
            + "; ".join(cells)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="crop/no-crop and runtimes only")
    parser.add_argument("--widths", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument("--scans", nargs="+", choices=["atlas", "ct"], default=["atlas", "ct"])
    parser.add_argument(
        "--paddings", nargs="+", choices=["zeros", "replicate"], default=["replicate"]
    )
    parser.add_argument("--checkpoint", type=Path, nargs="+", help="one or more; pooled too")
    parser.add_argument(
        "--accuracy-runtimes", nargs="+", default=["eager", "onnx"], help="fast paths to score"
    )
    parser.add_argument(
        "--data", type=Path, nargs="+", help="the dataset of each checkpoint (one: of all)"
    )
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument(
        "--margins", type=float, nargs="*", help="accuracy: also crop with these margins (mm)"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_setting(json.loads(args.one))))
        return
    print(
        f"# {os.cpu_count()} CPUs, torch {torch.__version__}, {args.threads} threads, "
        f"load average {os.getloadavg()[0]:.1f}; deployed UNet++ (norm batch)"
    )
    if not args.skip_speed:
        with tempfile.TemporaryDirectory() as tmp:
            settings = [
                (*s, padding)
                for s in (QUICK if args.quick else SETTINGS)
                if s[1] in args.widths and s[0] in args.scans
                for padding in args.paddings
            ]
            speed_table(make_scans(Path(tmp)), args.threads, settings)
    if args.checkpoint and args.data:
        data = args.data * len(args.checkpoint) if len(args.data) == 1 else args.data
        if len(data) != len(args.checkpoint):
            parser.error("--data: give one dataset, or one per --checkpoint")
        runtimes = tuple(args.accuracy_runtimes)
        tables = [
            accuracy_table(c, d, args.threads, args.margins, runtimes)
            for c, d in zip(args.checkpoint, data, strict=True)
        ]
        pooled_accuracy(tables)


if __name__ == "__main__":
    main()
