"""Segmentation metrics as pure functions on boolean numpy masks (3D volumes or 2D slices).

Definitions (see ``docs/metrics.md``):

- Dice = 2|P&G| / (|P|+|G|), IoU = |P&G| / |P|G|, computed on the whole mask (3D per subject).
- Empty policy: when a ratio is 0/0 because both masks are empty, the result is 1.0
  (``empty="one"``, the default: correctly predicting "no lesion" is perfect), NaN
  (``empty="nan"``: the case is left out of means) or 0.0 (``empty="zero"``).
- Lesions are connected components with full connectivity by default (``connectivity=26``:
  26-neighbourhood in 3D, 8 in 2D; two voxels touching only at a corner belong to one
  lesion, as ISLES'22 counts them) or face connectivity (``connectivity=6``: 6 in 3D, 4 in 2D;
  SciPy's default, as the ATLAS R2.0 final scoring counts them).
- HD95 is MONAI's 95th-percentile symmetric Hausdorff distance in mm (voxel spacing given).
- A ground-truth lesion is detected when at least one of its voxels is predicted; a predicted
  lesion is a true positive when at least one of its voxels is in the ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from strokeseg.data.components import component_sizes, label_lesions

EmptyPolicy = Literal["one", "nan", "zero"]
EMPTY_POLICIES: tuple[str, ...] = ("one", "nan", "zero")


def empty_value(empty: str) -> float:
    """The value of a 0/0 ratio (both masks empty) under ``empty``."""
    values = {"one": 1.0, "nan": float("nan"), "zero": 0.0}
    if empty not in values:
        raise ValueError(f"empty policy must be one of {EMPTY_POLICIES}, got {empty!r}")
    return values[empty]


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
    return pred, gt


def _ratio(numerator: float, denominator: float, empty: str) -> float:
    return float(numerator) / float(denominator) if denominator else empty_value(empty)


def dice_from_counts(overlap, size_sum, empty: EmptyPolicy = "one"):
    """Dice 2|P&G| / (|P|+|G|) from voxel counts: ``overlap`` = |P&G|, ``size_sum`` = |P|+|G|,
    numbers or arrays of them (a float or a float64 array back); 0/0 follows ``empty``."""
    overlap = np.asarray(overlap, dtype=np.float64)
    size_sum = np.asarray(size_sum, dtype=np.float64)
    value = np.full(np.broadcast(overlap, size_sum).shape, empty_value(empty))
    np.divide(2 * overlap, size_sum, out=value, where=size_sum > 0)
    return float(value) if value.ndim == 0 else value


def dice(pred: np.ndarray, gt: np.ndarray, empty: EmptyPolicy = "one") -> float:
    """Dice coefficient 2|P&G| / (|P|+|G|); both masks empty follows ``empty``."""
    pred, gt = _pair(pred, gt)
    intersection = np.count_nonzero(pred & gt)
    return dice_from_counts(intersection, np.count_nonzero(pred) + np.count_nonzero(gt), empty)


def iou(pred: np.ndarray, gt: np.ndarray, empty: EmptyPolicy = "one") -> float:
    """Intersection over union |P&G| / |P|G| (Jaccard); both masks empty follows ``empty``."""
    pred, gt = _pair(pred, gt)
    return _ratio(np.count_nonzero(pred & gt), np.count_nonzero(pred | gt), empty)


def volume_ml(mask: np.ndarray, voxel_volume_mm3: float) -> float:
    """Lesion volume in millilitres (1 mL = 1000 mm3)."""
    return float(np.count_nonzero(mask)) * float(voxel_volume_mm3) / 1000.0


def abs_volume_difference_ml(pred: np.ndarray, gt: np.ndarray, voxel_volume_mm3: float) -> float:
    """|V(P) - V(G)| in mL: how far the predicted lesion load is from the true one."""
    pred, gt = _pair(pred, gt)
    voxels = abs(int(np.count_nonzero(pred)) - int(np.count_nonzero(gt)))
    return voxels * float(voxel_volume_mm3) / 1000.0


def false_positive_ml(pred: np.ndarray, gt: np.ndarray, voxel_volume_mm3: float) -> float:
    """Volume of the predicted voxels outside the ground truth, in mL (|P \\ G|)."""
    pred, gt = _pair(pred, gt)
    return volume_ml(pred & ~gt, voxel_volume_mm3)


@dataclass(frozen=True)
class LesionCounts:
    """Lesion-wise detection counts for one subject.

    ``detected`` counts ground-truth lesions touched by the prediction (true positives),
    ``missed`` the others (false negatives); ``false_positive`` counts predicted lesions that
    touch no ground truth. One predicted blob covering two true lesions detects both.
    """

    n_gt: int
    n_pred: int
    detected: int
    false_positive: int

    @property
    def missed(self) -> int:
        return self.n_gt - self.detected

    def _undefined(self, empty: str) -> float:
        # 0/0 ratio: perfect agreement when neither side has a lesion, a failure otherwise.
        return empty_value(empty) if self.n_gt == 0 and self.n_pred == 0 else 0.0

    def precision(self, empty: EmptyPolicy = "one") -> float:
        """Share of predicted lesions that overlap the ground truth."""
        if self.n_pred == 0:
            return self._undefined(empty)
        return (self.n_pred - self.false_positive) / self.n_pred

    def recall(self, empty: EmptyPolicy = "one") -> float:
        """Share of ground-truth lesions that are detected (at least one voxel overlaps)."""
        return self.detected / self.n_gt if self.n_gt else self._undefined(empty)

    def f1(self, empty: EmptyPolicy = "one") -> float:
        """Lesion-wise F1 = 2TP / (2TP + FP + FN), TP = detected GT lesions."""
        denominator = 2 * self.detected + self.false_positive + self.missed
        return 2 * self.detected / denominator if denominator else self._undefined(empty)

    @property
    def count_difference(self) -> int:
        """|number of predicted lesions - number of ground-truth lesions|."""
        return abs(self.n_pred - self.n_gt)


def lesion_counts(
    pred: np.ndarray, gt: np.ndarray, connectivity: int = 26, min_iou: float | None = None
) -> LesionCounts:
    """Count detected, missed and false-positive lesions; lesions are components with
    ``connectivity`` 26 (full, default) or 6 (faces).

    Without ``min_iou`` a lesion is found by a 1-voxel overlap (one predicted blob may detect
    several true lesions). With it, lesions are matched one to one: (true, predicted) pairs in
    decreasing IoU, each kept when its IoU >= ``min_iou`` and neither lesion is matched yet,
    as panoptica's ``NaiveThresholdMatching`` does for ISLES'26 (``min_iou=0.25``).
    """
    pred, gt = _pair(pred, gt)
    gt_labels, n_gt = label_lesions(gt, connectivity)
    pred_labels, n_pred = label_lesions(pred, connectivity)
    both = pred & gt
    if min_iou is None:
        detected = np.unique(gt_labels[both]).size
        true_positive_pred = np.unique(pred_labels[both]).size
        return LesionCounts(n_gt, n_pred, detected, n_pred - true_positive_pred)
    pairs, overlap = np.unique(
        np.stack([gt_labels[both], pred_labels[both]]), axis=1, return_counts=True
    )
    sizes = (
        component_sizes(gt_labels, n_gt)[pairs[0]] + component_sizes(pred_labels, n_pred)[pairs[1]]
    )
    iou = overlap / (sizes - overlap)
    matched_gt, matched_pred = set(), set()
    for k in np.argsort(-iou, kind="stable"):
        g, p = int(pairs[0, k]), int(pairs[1, k])
        if iou[k] >= min_iou and g not in matched_gt and p not in matched_pred:
            matched_gt.add(g)
            matched_pred.add(p)
    return LesionCounts(n_gt, n_pred, len(matched_gt), n_pred - len(matched_pred))


def lesion_f1(
    pred: np.ndarray,
    gt: np.ndarray,
    empty: EmptyPolicy = "one",
    connectivity: int = 26,
    min_iou: float | None = None,
) -> float:
    """Lesion-wise F1 of ``pred`` against ``gt`` (see :class:`LesionCounts`)."""
    return lesion_counts(pred, gt, connectivity, min_iou).f1(empty)


def pr_auc(probability: np.ndarray, gt: np.ndarray, empty: EmptyPolicy = "one") -> float:
    """Area under the voxel-wise precision-recall curve of a probability map, as ISLES'26
    scores it (scikit-learn's ``precision_recall_curve`` and ``auc``): every distinct
    probability is a threshold, the curve starts at recall 0, precision 1, and is integrated
    by the trapezoidal rule. Without a true lesion: the empty value for a constant map, else 0."""
    probability = np.asarray(probability, dtype=np.float32).ravel()
    gt = np.asarray(gt, dtype=bool).ravel()
    if probability.shape != gt.shape:
        raise ValueError(
            f"probability map size {probability.size} differs from ground truth {gt.size}"
        )
    if not gt.any():
        return empty_value(empty) if np.all(probability == probability[0]) else 0.0
    order = np.argsort(-probability, kind="stable")
    last = np.r_[np.flatnonzero(np.diff(probability[order])), gt.size - 1]  # per threshold
    tp = np.cumsum(gt[order])[last]
    precision = np.r_[1.0, tp / (last + 1)]
    recall = np.r_[0.0, tp / tp[-1]]
    return float(np.sum(np.diff(recall) * (precision[1:] + precision[:-1]) / 2))


def abs_volume_difference_voxels(pred: np.ndarray, gt: np.ndarray) -> int:
    """|#P - #G| in voxels, as the ATLAS R2.0 scoring reports the volume difference."""
    pred, gt = _pair(pred, gt)
    return abs(int(np.count_nonzero(pred)) - int(np.count_nonzero(gt)))


def hd95(pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, ...]) -> float:
    """95th-percentile symmetric Hausdorff distance in mm (MONAI's, with the voxel spacing).

    Undefined (NaN, left out of means) when either mask is empty: there is no surface to
    measure from.
    """
    import warnings

    import torch
    from monai.metrics import compute_hausdorff_distance

    pred, gt = _pair(pred, gt)
    if not pred.any() or not gt.any():
        return float("nan")
    as_batch = [torch.from_numpy(m[None, None].astype(np.float32)) for m in (pred, gt)]
    with warnings.catch_warnings():  # MONAI 1.5+ warns about its own internal argument
        warnings.simplefilter("ignore", FutureWarning)
        distance = compute_hausdorff_distance(
            *as_batch, include_background=True, percentile=95, spacing=[float(s) for s in spacing]
        )
    return float(distance.item())


def per_slice_dice(pred: np.ndarray, gt: np.ndarray, axis: int = -1) -> np.ndarray:
    """Dice of each slice along ``axis`` that contains ground-truth lesion.

    Slices without lesion in the ground truth are left out (their Dice is 0 or 0/0 and would
    only measure false positives), so the mean of this array is the usual "per-slice Dice on
    lesion slices" that 2D papers report. Returns an empty array when no slice has lesion.
    """
    pred, gt = _pair(pred, gt)
    reduce_axes = tuple(a for a in range(gt.ndim) if a != axis % gt.ndim)
    gt_size = np.count_nonzero(gt, axis=reduce_axes)
    pred_size = np.count_nonzero(pred, axis=reduce_axes)
    intersection = np.count_nonzero(pred & gt, axis=reduce_axes)
    lesion = gt_size > 0
    return dice_from_counts(intersection[lesion], pred_size[lesion] + gt_size[lesion])


@dataclass
class PooledOverlap:
    """Accumulates voxel counts over subjects for pooled (global) Dice and IoU.

    Pooled Dice treats the whole test set as one big volume, so large lesions dominate it;
    the per-subject mean weighs every subject equally. Both are reported, labelled.
    """

    intersection: int = 0
    union: int = 0
    size_sum: int = 0

    def add(self, pred: np.ndarray, gt: np.ndarray) -> None:
        pred, gt = _pair(pred, gt)
        self.intersection += int(np.count_nonzero(pred & gt))
        self.union += int(np.count_nonzero(pred | gt))
        self.size_sum += int(np.count_nonzero(pred) + np.count_nonzero(gt))

    def dice(self, empty: EmptyPolicy = "one") -> float:
        return dice_from_counts(self.intersection, self.size_sum, empty)

    def iou(self, empty: EmptyPolicy = "one") -> float:
        return _ratio(self.intersection, self.union, empty)
