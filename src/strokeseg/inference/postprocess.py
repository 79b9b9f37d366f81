"""Post-processing decided on validation subjects (not in the paper; docs/training.md).

A mask is ``probability >= threshold`` with every 26-connected component smaller than
``min_lesion_mm3`` removed. :func:`choose` picks both on validation subjects by an objective:
``dice``, the mean per-subject Dice (the headline metric), or ``dice_f1``, the mean of
per-subject Dice and lesion-wise F1 (which also counts each false-positive speck, as the
ATLAS R2.0 and ISLES'22 leaderboards do). Ties go to the setting closest to the plain rule
(threshold 0.5, no size limit), which is always among the candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from strokeseg.data.components import keep_large, label_lesions
from strokeseg.evaluation.metrics import LesionCounts, dice_from_counts


@dataclass(frozen=True)
class Postprocess:
    threshold: float = 0.5
    min_lesion_mm3: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


RAW = Postprocess()


def apply(prob: np.ndarray, voxel_mm3: float, rule: Postprocess = RAW) -> np.ndarray:
    """The binary mask (uint8) of ``prob`` under ``rule``."""
    mask = prob >= rule.threshold
    if rule.min_lesion_mm3 > 0 and mask.any():
        mask = keep_large(mask, rule.min_lesion_mm3, voxel_mm3)
    return mask.astype(np.uint8)


def false_lesion_ml(prob: np.ndarray, gt: np.ndarray, voxel_mm3: float, rule: Postprocess) -> float:
    """The volume (mL) of the components of ``rule``'s mask that touch no voxel of ``gt``
    (26-connected, as the lesion-wise counts)."""
    labels, n = label_lesions(apply(prob, voxel_mm3, rule))
    if n == 0:
        return 0.0
    touching = np.unique(labels[np.asarray(gt, dtype=bool)])
    false = ~np.isin(labels, touching[touching > 0]) & (labels > 0)
    return float(np.count_nonzero(false)) * voxel_mm3 / 1000.0


OBJECTIVES = ("dice", "dice_f1")


def _case_scores(
    prob: np.ndarray, gt: np.ndarray, mm3: float, thresholds: list[float], sizes_mm3: list[float]
) -> np.ndarray:
    """(2, thresholds, sizes): per-subject Dice and lesion-wise F1 (26-connected, 1-voxel
    overlap, as :func:`strokeseg.evaluation.metrics.lesion_counts`) of every rule.

    Each threshold labels the case once; every size limit then keeps a subset of its
    components. A subject with neither lesion nor prediction scores 1.0 on both.
    """
    gt = gt.astype(bool)
    truth = int(gt.sum())
    gt_labels, n_gt = label_lesions(gt)
    lesion_of_voxel = gt_labels[gt]
    out = np.zeros((2, len(thresholds), len(sizes_mm3)))
    for i, t in enumerate(thresholds):
        labels, n = label_lesions(prob >= t)
        size = np.bincount(labels.ravel(), minlength=n + 1)[1:]
        inside = labels[gt]
        hit = np.bincount(inside, minlength=n + 1)[1:]  # overlap of each component
        touching = inside > 0  # (component, true lesion) pairs that share a voxel
        pairs = np.unique(np.stack([inside[touching], lesion_of_voxel[touching]]), axis=1)
        for j, v in enumerate(sizes_mm3):
            keep = size * mm3 >= v
            predicted, overlap = int(size[keep].sum()), int(hit[keep].sum())
            out[0, i, j] = dice_from_counts(overlap, predicted + truth)
            n_pred = int(keep.sum())
            lesions = LesionCounts(
                n_gt=n_gt,
                n_pred=n_pred,
                detected=np.unique(pairs[1][keep[pairs[0] - 1]]).size,
                false_positive=n_pred - int((keep & (hit > 0)).sum()),
            )
            out[1, i, j] = lesions.f1()
    return out


def choose(
    cases: Sequence[tuple[np.ndarray, np.ndarray, float]],
    thresholds: Sequence[float],
    min_lesion_mm3: Sequence[float],
    objective: str = "dice",
) -> tuple[Postprocess, dict[str, float], dict[str, float]]:
    """(best rule, its mean per-subject Dice and F1, the plain rule's) over (prob, gt, voxel
    mm3) cases, the rule chosen by ``objective`` (``dice`` or ``dice_f1``)."""
    if not cases:
        raise ValueError("choose needs at least one validation case")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective {objective!r}: expected one of {', '.join(OBJECTIVES)}")
    thresholds = sorted({float(t) for t in [*thresholds, RAW.threshold]})
    sizes_mm3 = sorted({float(v) for v in [*min_lesion_mm3, RAW.min_lesion_mm3]})
    scores = [_case_scores(p, g, mm3, thresholds, sizes_mm3) for p, g, mm3 in cases]
    dice, f1 = np.mean(scores, axis=0)
    goal = dice if objective == "dice" else (dice + f1) / 2
    _, _, _, (i, j) = max(
        (goal[i, j], -abs(t - RAW.threshold), -v, (i, j))
        for i, t in enumerate(thresholds)
        for j, v in enumerate(sizes_mm3)
    )
    r, s0 = thresholds.index(RAW.threshold), sizes_mm3.index(RAW.min_lesion_mm3)
    best = Postprocess(thresholds[i], sizes_mm3[j])
    return (
        best,
        {"dice": float(dice[i, j]), "f1": float(f1[i, j])},
        {"dice": float(dice[r, s0]), "f1": float(f1[r, s0])},
    )
