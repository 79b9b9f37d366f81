"""Per-subject metric rows, a cohort summary, and their CSV/JSON files.

The headline is the per-subject 3D Dice (and IoU) as mean and standard deviation over
subjects; pooled (global) Dice/IoU and per-slice Dice on lesion slices are reported beside
it under their own names (see ``docs/metrics.md``).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from strokeseg.data.components import connectivity_structure
from strokeseg.data.io import refuse_existing, write_atomic
from strokeseg.evaluation import metrics
from strokeseg.evaluation.leaderboards import MetricPreset, metric_preset
from strokeseg.evaluation.metrics import EmptyPolicy

Case = tuple
"""(subject id, predicted mask, ground-truth mask, voxel volume in mm3[, voxel spacing in mm[,
probability map]]); without the spacing, HD95 takes isotropic voxels of the given volume;
without the probability map, PR-AUC is NaN."""

ROW_FIELDS: tuple[str, ...] = (
    "subject",
    "dice",
    "iou",
    "gt_volume_ml",
    "pred_volume_ml",
    "abs_volume_difference_ml",
    "abs_volume_difference_voxels",
    "false_positive_ml",
    "hd95_mm",
    "n_gt_lesions",
    "n_pred_lesions",
    "lesions_detected",
    "lesions_missed",
    "false_positive_lesions",
    "lesion_precision",
    "lesion_recall",
    "lesion_f1",
    "lesion_count_difference",
    "pr_auc",
    "slice_dice_mean",
    "n_lesion_slices",
)
REPORT_FILES: tuple[str, ...] = ("per_subject.csv", "summary.json")
SUMMARIZED: tuple[str, ...] = (
    "dice",
    "iou",
    "lesion_f1",
    "lesion_precision",
    "lesion_recall",
    "abs_volume_difference_ml",
    "abs_volume_difference_voxels",
    "false_positive_ml",
    "hd95_mm",
    "lesion_count_difference",
    "pr_auc",
)

LABELS: dict[str, str] = {
    "dice": "Dice, per-subject 3D (headline)",
    "iou": "IoU, per-subject 3D",
    "slice_dice": "Dice, per-slice (slices with lesion)",
    "lesion_f1": "lesion-wise F1",
    "false_positive_ml": "false-positive volume (mL)",
    "abs_volume_difference_ml": "absolute volume difference (mL)",
    "abs_volume_difference_voxels": "absolute volume difference (voxels)",
    "hd95_mm": "HD95 (mm; both masks non-empty)",
    "lesion_count_difference": "lesion count difference",
    "dice_pooled": "Dice, pooled over subjects",
    "iou_pooled": "IoU, pooled",
}
"""What the printed summaries and the demo report call each metric (docs/metrics.md)."""
SHORT_LABELS: dict[str, str] = {
    "dice": "Dice",
    "iou": "IoU",
    "lesion_f1": "lesion F1",
    "abs_volume_difference_ml": "abs ΔV mL",
    "abs_volume_difference_voxels": "abs ΔV voxels",
    "hd95_mm": "HD95 mm",
    "dice_pooled": "pooled Dice",
    "gt_volume_ml": "true mL",
    "pred_volume_ml": "predicted mL",
    "n_gt_lesions": "true lesions",
    "n_pred_lesions": "predicted lesions",
}
"""Column headings of the tables (benchmark tables, the evaluation report)."""


def evaluate_subject(
    subject: str,
    pred: np.ndarray,
    gt: np.ndarray,
    voxel_volume_mm3: float,
    empty: EmptyPolicy = "one",
    slice_axis: int = 2,
    *,
    spacing: tuple[float, ...] | None = None,
    connectivity: int = 26,
    min_iou: float | None = None,
    probability: np.ndarray | None = None,
) -> dict:
    """All per-subject metrics of one 3D prediction, as one row (keys :data:`ROW_FIELDS`);
    lesions matched by ``min_iou`` as :func:`metrics.lesion_counts` says."""
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if pred.ndim != 3 or pred.shape != gt.shape:
        raise ValueError(f"{subject}: need two 3D masks of one shape, got {pred.shape}, {gt.shape}")
    lesions = metrics.lesion_counts(pred, gt, connectivity, min_iou)
    spacing = spacing if spacing is not None else (float(voxel_volume_mm3) ** (1 / 3),) * 3
    slices = metrics.per_slice_dice(pred, gt, axis=slice_axis)
    return {
        "subject": subject,
        "dice": metrics.dice(pred, gt, empty),
        "iou": metrics.iou(pred, gt, empty),
        "gt_volume_ml": metrics.volume_ml(gt, voxel_volume_mm3),
        "pred_volume_ml": metrics.volume_ml(pred, voxel_volume_mm3),
        "abs_volume_difference_ml": metrics.abs_volume_difference_ml(pred, gt, voxel_volume_mm3),
        "abs_volume_difference_voxels": metrics.abs_volume_difference_voxels(pred, gt),
        "false_positive_ml": metrics.false_positive_ml(pred, gt, voxel_volume_mm3),
        "hd95_mm": metrics.hd95(pred, gt, spacing),
        "n_gt_lesions": lesions.n_gt,
        "n_pred_lesions": lesions.n_pred,
        "lesions_detected": lesions.detected,
        "lesions_missed": lesions.missed,
        "false_positive_lesions": lesions.false_positive,
        "lesion_precision": lesions.precision(empty),
        "lesion_recall": lesions.recall(empty),
        "lesion_f1": lesions.f1(empty),
        "lesion_count_difference": lesions.count_difference,
        "pr_auc": float("nan") if probability is None else metrics.pr_auc(probability, gt, empty),
        "slice_dice_mean": float(slices.mean()) if slices.size else float("nan"),
        "n_lesion_slices": int(slices.size),
    }


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and population std (ddof=0) over the non-NaN values; NaN when none are left."""
    finite = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if finite.size == 0:
        return float("nan"), float("nan")
    return float(finite.mean()), float(finite.std())


class Scores:
    """Per-subject rows and the running sums of a cohort summary, one subject at a time: only
    numbers are kept, so memory stays flat in the number of subjects. Lesions are counted and
    matched as ``metrics_preset`` says (:mod:`strokeseg.evaluation.leaderboards`), whose
    columns the summary's ``leaderboard`` repeats under the leaderboard's names."""

    def __init__(
        self,
        empty: EmptyPolicy = "one",
        slice_axis: int = 2,
        connectivity: int | None = None,
        metrics_preset: str = "strokeseg",
    ):
        metrics.empty_value(empty)  # reject an unknown policy before any work
        self.preset = metric_preset(metrics_preset, connectivity)
        connectivity_structure(3, self.preset.connectivity)  # reject an unknown connectivity too
        self.empty, self.slice_axis = empty, slice_axis
        self.rows: list[dict] = []
        self.pooled = metrics.PooledOverlap()
        self.slice_dices: list[np.ndarray] = []  # one value per lesion slice
        self.n_both_empty = 0

    def add(self, subject: str, pred, gt, voxel_volume_mm3: float, spacing=None, probability=None):
        """Score one subject (a :data:`Case`); returns its row."""
        row = evaluate_subject(
            subject,
            pred,
            gt,
            voxel_volume_mm3,
            self.empty,
            self.slice_axis,
            spacing=spacing,
            connectivity=self.preset.connectivity,
            min_iou=self.preset.min_iou,
            probability=probability,
        )
        self.rows.append(row)
        self.pooled.add(pred, gt)
        self.slice_dices.append(metrics.per_slice_dice(pred, gt, axis=self.slice_axis))
        self.n_both_empty += not (np.any(pred) or np.any(gt))
        return row

    def summary(self) -> dict:
        empty, rows = self.empty, self.rows
        summary: dict = {"n_subjects": len(rows), "empty_policy": empty}
        for name in SUMMARIZED:
            values = [float(row[name]) for row in rows]
            summary[f"{name}_mean"], summary[f"{name}_std"] = _mean_std(values)
            summary[f"{name}_n"] = sum(not math.isnan(v) for v in values)
        summary["dice_pooled"] = self.pooled.dice(empty)
        summary["iou_pooled"] = self.pooled.iou(empty)
        all_slices = np.concatenate(self.slice_dices) if self.slice_dices else np.zeros(0)
        summary["slice_dice_mean"], summary["slice_dice_std"] = _mean_std(all_slices.tolist())
        summary["n_lesion_slices"] = int(all_slices.size)
        summary["n_both_empty"] = int(self.n_both_empty)
        summary.update(_scoring_notes(self.preset, summary))
        return summary


def evaluate(
    cases: Iterable[Case],
    empty: EmptyPolicy = "one",
    slice_axis: int = 2,
    connectivity: int | None = None,
    metrics_preset: str = "strokeseg",
) -> tuple[list[dict], dict]:
    """Evaluate (id, pred, gt, voxel mm3[, spacing[, probability]]) cases one at a time
    (:class:`Scores`); (rows, summary).

    ``cases`` may be a generator, so only one subject's volumes are held in memory.
    """
    scores = Scores(empty, slice_axis, connectivity, metrics_preset)
    for case in cases:
        scores.add(*case)
    return scores.rows, scores.summary()


def _scoring_notes(preset: MetricPreset, summary: dict) -> dict:
    """How lesions were counted and matched, and a leaderboard preset's columns."""
    notes = {
        "connectivity": "full: 26-neighbourhood in 3D"
        if preset.connectivity == 26
        else "faces: 6-neighbourhood in 3D",
        "lesion_connectivity": preset.connectivity,
        "metrics": preset.name,
        "lesion_matching": "1-voxel overlap"
        if preset.min_iou is None
        else f"one to one at IoU >= {preset.min_iou:g}",
        "std": "population standard deviation over subjects (ddof=0)",
    }
    if preset.columns:
        columns = {label: summary[f"{key}_mean"] for label, key in preset.columns}
        notes["leaderboard"] = {"title": preset.title, **columns}
    return notes


def _cell(value: object) -> object:
    return repr(float(value)) if isinstance(value, (float, np.floating)) else value


def per_subject_csv(rows: list[dict]) -> str:
    """The per-subject rows as CSV text (floats at full precision, NaN as ``nan``)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ROW_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _cell(row[key]) for key in ROW_FIELDS})
    return buffer.getvalue()


def summary_json(summary: dict) -> str:
    """The summary as strict JSON text: NaN (nothing to average) becomes ``null``, in nested
    parts too."""

    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return None if isinstance(value, float) and math.isnan(value) else value

    return json.dumps(clean(summary), indent=2, allow_nan=False) + "\n"


def check_writable(out_dir: str | Path, *, overwrite: bool = False) -> None:
    """Refuse (StrokesegError) when a report file already exists in ``out_dir`` and not overwrite.

    Called before any work and again before writing, so a refusal leaves no partial output.
    """
    refuse_existing([Path(out_dir) / name for name in REPORT_FILES], overwrite)


def write_report(
    rows: list[dict], summary: dict, out_dir: str | Path, *, overwrite: bool = False
) -> list[Path]:
    """Write OUT/per_subject.csv and OUT/summary.json; refuse existing files unless overwrite.

    Both targets are checked before either is written.
    """
    out_dir = Path(out_dir)
    texts = (per_subject_csv(rows), summary_json(summary))
    targets = {out_dir / name: text for name, text in zip(REPORT_FILES, texts, strict=True)}
    check_writable(out_dir, overwrite=overwrite)
    return [write_atomic(path, text, overwrite=True) for path, text in targets.items()]
