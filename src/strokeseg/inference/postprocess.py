"""Post-processing decided on validation subjects (not in the paper; docs/training.md).

A mask is ``probability >= threshold`` with every 26-connected component smaller than
``min_lesion_mm3`` removed. :func:`choose` picks both on validation subjects by the mean
per-subject Dice, the headline metric; ties go to the setting closest to the plain rule
(threshold 0.5, no size limit), which is always among the candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from strokeseg.evaluation.metrics import label_lesions


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
        labels, n = label_lesions(mask)
        sizes = np.bincount(labels.ravel(), minlength=n + 1) * voxel_mm3
        keep = sizes >= rule.min_lesion_mm3
        keep[0] = False
        mask = keep[labels]
    return mask.astype(np.uint8)


def choose(
    cases: Sequence[tuple[np.ndarray, np.ndarray, float]],
    thresholds: Sequence[float],
    min_lesion_mm3: Sequence[float],
) -> tuple[Postprocess, float, float]:
    """(best rule, its mean per-subject Dice, the plain rule's) over (prob, gt, voxel mm3) cases.

    Dice of a subject with neither lesion nor prediction counts 1.0 (docs/metrics.md). Each
    threshold labels a case once; every size limit then keeps a subset of its components.
    """
    if not cases:
        raise ValueError("choose needs at least one validation case")
    thresholds = sorted({float(t) for t in [*thresholds, RAW.threshold]})
    sizes_mm3 = sorted({float(v) for v in [*min_lesion_mm3, RAW.min_lesion_mm3]})
    totals = np.zeros((len(thresholds), len(sizes_mm3)))
    for prob, gt, mm3 in cases:
        gt = gt.astype(bool)
        truth = int(gt.sum())
        for i, t in enumerate(thresholds):
            labels, n = label_lesions(prob >= t)
            size = np.bincount(labels.ravel(), minlength=n + 1)[1:]
            hit = np.bincount(labels[gt], minlength=n + 1)[1:]  # overlap of each component
            for j, v in enumerate(sizes_mm3):
                keep = size * mm3 >= v
                predicted, overlap = int(size[keep].sum()), int(hit[keep].sum())
                totals[i, j] += 1.0 if predicted + truth == 0 else 2 * overlap / (predicted + truth)
    scores = totals / len(cases)
    score, _, _, best = max(
        (scores[i, j], -abs(t - RAW.threshold), -v, Postprocess(t, v))
        for i, t in enumerate(thresholds)
        for j, v in enumerate(sizes_mm3)
    )
    raw = scores[thresholds.index(RAW.threshold), sizes_mm3.index(RAW.min_lesion_mm3)]
    return best, float(score), float(raw)
