"""The demo's ``report.md``: the recipe, the test subjects' figures, the timings (pure
rendering of what :mod:`strokeseg.jobs.demo` measured)."""

from __future__ import annotations

import csv
from pathlib import Path

from strokeseg.evaluation.report import LABELS

DISCLAIMER = "strokeseg is a research tool, not a medical device."


def subject_table(per_subject_csv: Path) -> str:
    """One line per test subject: reference and predicted volume, Dice, lesions found."""
    with per_subject_csv.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return "\n".join(
        f"| {r['subject']} | {float(r['gt_volume_ml']):.2f} | {float(r['pred_volume_ml']):.2f} "
        f"| {float(r['dice']):.3f} | {r['lesions_detected']} of {r['n_gt_lesions']} "
        f"| {r['false_positive_lesions']} | {float(r['false_positive_ml']):.2f} |"
        for r in sorted(rows, key=lambda r: float(r["gt_volume_ml"]))
    )


METRICS = (
    "dice",
    "lesion_f1",
    "false_positive_ml",
    "iou",
    "slice_dice",
    "abs_volume_difference_ml",
    "lesion_count_difference",
)


def metrics_table(summary: dict) -> str:
    """Mean ± std over the test subjects, raw (p >= 0.5) beside post-processed."""
    raw = summary.get("raw", summary)

    def cell(s: dict, m: str) -> str:
        return f"{s[m + '_mean']:.3f} ± {s[m + '_std']:.3f}"

    lines = [f"| {LABELS[m]} | {cell(raw, m)} | {cell(summary, m)} |" for m in METRICS]
    pooled = LABELS["dice_pooled"]
    lines.append(f"| {pooled} | {raw['dice_pooled']:.3f} | {summary['dice_pooled']:.3f} |")
    return "\n".join(lines)


def postprocess_line(rule: dict | None) -> str:
    if not rule:
        return "- post-processing: none (p >= 0.5)"
    return (
        f"- post-processing (not in the paper), chosen on the {rule['val_subjects']} validation "
        f"subjects by {rule['objective']}: threshold {rule['threshold']:g}, 26-connected "
        f"lesions under {rule['min_lesion_mm3']:g} mm3 removed (validation Dice "
        f"{rule['val_dice_raw']:.3f} -> {rule['val_dice']:.3f}, lesion F1 "
        f"{rule['val_f1_raw']:.3f} -> {rule['val_f1']:.3f})"
    )


def recipe_lines(config, best_val: float, rule: dict | None) -> str:
    """The report's bullet list: model, training, Eq. 6 weights, split, selection, rule."""
    model, data = config.model, config.data
    samples = f"{data.patch_size}x{data.patch_size} patches" if data.patch_size else "slices"
    if data.context_slices:
        samples += f" of {2 * data.context_slices + 1} neighbouring slices (2.5D)"
    if data.mirror:
        samples += ", with their left-right mirror as more channels"
    loss, optim = config.loss, config.optim
    prior = f", output layer started at p = {model.output_prior:g}" if model.output_prior else ""
    extras = "; MONAI augmentation" if data.augment else ""
    if data.zero_outside_crop:
        extras += "; slices zeroed outside the inference crop"
    warmup = (
        f" (delta ramped up from 0 over the first {loss.delta_warmup:.0%} of the steps)"
        if loss.delta_warmup
        else ""
    )
    every = config.trainer.check_val_every_n_epoch
    selection = (
        "the last epoch, validated once"
        if every >= optim.epochs
        else f"the best of the epochs validated (every {every}, and the last)"
    )
    return "\n".join(
        [
            f"- model: `{model.name}` {model.kwargs}{prior}",
            f"- training: {optim.epochs} epochs of {config.trainer.limit_train_batches:g} "
            f"batches of {optim.batch_size} {samples}; Adam, lr {optim.lr:g} ({optim.schedule})"
            f"{extras}",
            f"- Eq. 6 weights: {loss.gamma:g} / {loss.lam:g} / {loss.delta:g}{warmup}; soft "
            f"Dice {'per sample, averaged' if loss.dice == 'sample' else 'over the batch'}",
            "- subjects split " + ("stratified by lesion volume" if data.stratify else "at random"),
            f"- best.ckpt: {selection} (mean per-subject validation Dice {best_val:.3f})",
            postprocess_line(rule),
        ]
    )


def report_markdown(
    summary: dict,
    subjects_md: str,
    timings: dict[str, float],
    config,
    lesions,
    subjects: int,
    best_val: float,
    rule: dict | None = None,
) -> str:
    table = metrics_table(summary)
    times = "\n".join(f"| {stage} | {seconds:.0f} |" for stage, seconds in timings.items())
    recipe = recipe_lines(config, best_val, rule)
    return f"""# strokeseg demo report

{DISCLAIMER} The data are synthetic (SynthATLAS: {subjects} subjects, real stroke lesion
shapes from the SOOP dataset on two MNI templates and one real head, each deformed), so these
numbers measure the pipeline, not clinical performance.

{recipe}

## Test subjects ({summary["n_subjects"]})

Mean ± standard deviation over the test subjects; raw: p >= 0.5, post-processed: the rule above.

| metric | raw | post-processed |
|---|---:|---:|
{table}

Post-processed, per test subject:

| subject | lesion mL | predicted mL | Dice | lesions found | false lesions | false-positive mL |
|---|---:|---:|---:|---:|---:|---:|
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
