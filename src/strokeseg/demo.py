"""``strokeseg demo``: the whole workflow on the embedded SynthATLAS cohort, with a report.

synth -> train (configs/demo.yaml: the proposed model at a CPU-sized width) -> evaluate on the
held-out subjects -> predict one scan -> ``OUT/report.md`` with the figures. Every stage's wall
time is measured and written into the report.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

from strokeseg.data.io import write_atomic
from strokeseg.errors import StrokesegError
from strokeseg.inference.engine import Predictor
from strokeseg.inference.predict import predict
from strokeseg.model_eval import evaluate_checkpoint
from strokeseg.synth import atlas
from strokeseg.training.config import load_config
from strokeseg.training.curves import read_epoch_metrics
from strokeseg.training.run import train
from strokeseg.tuning import fit_postprocess

DISCLAIMER = "strokeseg is a research tool, not a medical device."


def subject_table(per_subject_csv: Path) -> str:
    """One line per test subject: reference and predicted volume, Dice, lesions found."""
    with per_subject_csv.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return "\n".join(
        f"| {r['subject']} | {float(r['gt_volume_ml']):.2f} | {float(r['pred_volume_ml']):.2f} "
        f"| {float(r['dice']):.3f} | {r['lesions_detected']} of {r['n_gt_lesions']} "
        f"| {r['false_positive_lesions']} |"
        for r in sorted(rows, key=lambda r: float(r["gt_volume_ml"]))
    )


def report_markdown(
    summary: dict,
    subjects_md: str,
    timings: dict[str, float],
    config,
    lesions,
    subjects: int,
    best_val: float,
) -> str:
    rows = [
        ("Dice, per-subject 3D (headline)", "dice_mean", "dice_std"),
        ("IoU, per-subject 3D", "iou_mean", "iou_std"),
        ("Dice, per-slice (slices with lesion)", "slice_dice_mean", "slice_dice_std"),
        ("lesion-wise F1", "lesion_f1_mean", "lesion_f1_std"),
        (
            "absolute volume difference (mL)",
            "abs_volume_difference_ml_mean",
            "abs_volume_difference_ml_std",
        ),
    ]
    table = "\n".join(f"| {label} | {summary[m]:.4f} | {summary[s]:.4f} |" for label, m, s in rows)
    times = "\n".join(f"| {stage} | {seconds:.0f} |" for stage, seconds in timings.items())
    model, data = config.model, config.data
    samples = f"{data.patch_size}x{data.patch_size} patches" if data.patch_size else "slices"
    loss, optim = config.loss, config.optim
    prior = f", output layer started at p = {model.output_prior:g}" if model.output_prior else ""
    recipe = "\n".join(
        [
            f"- model: `{model.name}` {model.kwargs}{prior}",
            f"- training: {optim.epochs} epochs of {config.trainer.limit_train_batches:g} "
            f"batches of {optim.batch_size} {samples}; Adam, lr {optim.lr:g} ({optim.schedule})",
            f"- Eq. 6 weights: {loss.gamma:g} / {loss.lam:g} / {loss.delta:g}",
            "- subjects split " + ("stratified by lesion volume" if data.stratify else "at random"),
            f"- best validation Dice (pooled over the validation slices): {best_val:.4f}",
        ]
    )
    return f"""# strokeseg demo report

{DISCLAIMER} The data are synthetic (SynthATLAS: {subjects} subjects made from the ICBM152
2009a template), so these numbers measure the pipeline, not clinical performance.

{recipe}

## Test subjects ({summary["n_subjects"]})

| metric | mean | std |
|---|---:|---:|
{table}
| Dice, pooled over subjects | {summary["dice_pooled"]:.4f} | |
| IoU, pooled over subjects | {summary["iou_pooled"]:.4f} | |

| subject | lesion (mL) | predicted (mL) | Dice | lesions found | false-positive lesions |
|---|---:|---:|---:|---:|---:|
{subjects_md}

All columns: `evaluation/per_subject.csv`; definitions: docs/metrics.md.

## Prediction

`predict/{lesions.scan}_mask.nii.gz`: {lesions.volume_ml:.2f} mL in {lesions.count} lesion(s).

## Wall time (seconds)

| stage | s |
|---|---:|
{times}

## Figures

![training curves](run/curves.png)

Overlays (image | ground truth | prediction): `evaluation/overlays/`.
"""


def run_demo(out: Path, subjects: int, seed: int, overrides: list[str], overwrite: bool) -> Path:
    """Run every stage into ``out``; returns the report path."""
    if subjects < 4:
        raise StrokesegError(f"--subjects {subjects}: the demo needs at least 4 (train/val/test)")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise StrokesegError(f"{out}: folder is not empty (pass --overwrite or another --out)")
    config = load_config("demo", overrides)
    timings: dict[str, float] = {}

    def stage(name: str, work):
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        result = work()
        timings[name] = time.perf_counter() - start
        return result

    data, run = out / "data", out / "run"
    stage("synthesise SynthATLAS", lambda: atlas.generate(data, subjects, seed, overwrite))
    stage("train", lambda: train(config, data, run, overwrite=overwrite))
    stage("post-processing (validation)", lambda: fit_postprocess(config, data, run))
    summary = stage(
        "evaluate",
        lambda: evaluate_checkpoint(
            run / "best.ckpt", data, out / "evaluation", overwrite=overwrite
        ),
    )
    test_id = json.loads((run / "split.json").read_text(encoding="utf-8"))["test"][0]
    scan = next((data / test_id).rglob("*_T1w.nii.gz"))
    predictor = Predictor.from_checkpoint(run / "best.ckpt")
    rows, _ = stage(
        "predict one scan",
        lambda: predict(scan, out / "predict", predictor, overwrite=overwrite),
    )
    timings["total"] = sum(timings.values())
    best_val = max(read_epoch_metrics(run / "metrics.csv").get("val/dice", {0: 0.0}).values())
    subjects_md = subject_table(out / "evaluation" / "per_subject.csv")
    text = report_markdown(summary, subjects_md, timings, config, rows[0], subjects, best_val)
    return write_atomic(out / "report.md", text, overwrite=True)
