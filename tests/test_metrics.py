"""Metrics against values counted by hand on tiny masks, plus algebraic properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from strokeseg.data.components import label_lesions
from strokeseg.evaluation import metrics
from strokeseg.evaluation.report import evaluate


def box(shape, *slices) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[slices] = True
    return mask


def test_dice_iou_2d_hand_counted():
    gt = box((6, 6), slice(1, 3), slice(1, 4))  # rows 1-2, cols 1-3: 6 pixels
    pred = box((6, 6), slice(2, 4), slice(2, 5))  # rows 2-3, cols 2-4: 6 pixels
    # overlap: row 2, cols 2-3 = 2 pixels; union 10
    assert metrics.dice(pred, gt) == pytest.approx(4 / 12)
    assert metrics.iou(pred, gt) == pytest.approx(2 / 10)


def test_dice_iou_volume_3d_hand_counted():
    gt = box((4, 4, 4), slice(0, 2), slice(0, 2), slice(0, 2))  # 8 voxels
    pred = box((4, 4, 4), slice(1, 4), slice(0, 2), slice(0, 2))  # 12 voxels, 4 shared
    assert metrics.dice(pred, gt) == pytest.approx(0.4)  # 2*4 / (12+8)
    assert metrics.iou(pred, gt) == pytest.approx(0.25)  # 4 / 16
    # voxels of 2 mm3: 12 vs 8 voxels -> 24 vs 16 mm3 -> |0.024 - 0.016| mL
    assert metrics.volume_ml(pred, 2.0) == pytest.approx(0.024)
    assert metrics.abs_volume_difference_ml(pred, gt, 2.0) == pytest.approx(0.008)


def test_properties_on_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.random((7, 8, 9)) > 0.6
        b = rng.random((7, 8, 9)) > 0.5
        assert metrics.dice(a, a) == 1.0
        assert metrics.iou(a, a) == 1.0
        assert metrics.dice(a, b) == metrics.dice(b, a)
        d = metrics.dice(a, b)
        assert metrics.iou(a, b) == pytest.approx(d / (2 - d))
        assert metrics.dice(a, ~a) == 0.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        metrics.dice(np.zeros((3, 3)), np.zeros((3, 4)))


def test_one_false_positive_and_one_missed_lesion():
    shape = (8, 8, 8)
    lesion_a = box(shape, slice(0, 2), slice(0, 2), slice(0, 2))
    lesion_b = box(shape, slice(5, 7), slice(5, 7), slice(5, 7))
    gt = lesion_a | lesion_b
    hit_a = box(shape, slice(1, 3), slice(0, 2), slice(0, 2))  # overlaps lesion A
    false_positive = box(shape, slice(0, 2), slice(6, 8), slice(0, 1))  # far from any GT
    pred = hit_a | false_positive  # lesion B is missed
    counts = metrics.lesion_counts(pred, gt)
    assert (counts.n_gt, counts.n_pred, counts.detected, counts.missed) == (2, 2, 1, 1)
    assert counts.false_positive == 1
    assert counts.f1() == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))  # 0.5
    assert counts.precision() == pytest.approx(0.5)
    assert counts.recall() == pytest.approx(0.5)
    assert counts.count_difference == 0
    # a second false positive: F1 = 2 / (2 + 2 + 1), one more predicted lesion than GT
    pred2 = pred | box(shape, slice(7, 8), slice(0, 1), slice(7, 8))
    counts2 = metrics.lesion_counts(pred2, gt)
    assert counts2.f1() == pytest.approx(0.4)
    assert counts2.precision() == pytest.approx(1 / 3)
    assert counts2.count_difference == 1
    assert metrics.lesion_f1(pred2, gt) == pytest.approx(0.4)


def test_one_predicted_blob_covering_two_lesions_detects_both():
    gt = box((5, 5, 1), slice(0, 1), slice(None), slice(None))
    gt |= box((5, 5, 1), slice(2, 3), slice(None), slice(None))
    pred = box((5, 5, 1), slice(0, 3), slice(None), slice(None))
    counts = metrics.lesion_counts(pred, gt)
    assert (counts.n_gt, counts.n_pred, counts.detected, counts.false_positive) == (2, 1, 2, 0)
    assert counts.f1() == 1.0
    assert counts.count_difference == 1


def test_corner_touching_voxels_are_one_lesion_with_26_connectivity():
    gt = np.zeros((3, 3, 3), dtype=bool)
    gt[0, 0, 0] = gt[1, 1, 1] = True
    assert label_lesions(gt)[1] == 1
    assert ndimage.label(gt)[1] == 2  # scipy's default 6-connectivity splits them
    pred = np.zeros_like(gt)
    pred[0, 0, 0] = True
    counts = metrics.lesion_counts(pred, gt)
    assert (counts.n_gt, counts.detected) == (1, 1)
    assert counts.recall() == 1.0  # with 6-connectivity it would be 1/2
    flat = np.eye(3, dtype=bool)  # 2D diagonal: one lesion with 8-connectivity
    assert label_lesions(flat)[1] == 1


@pytest.mark.parametrize(("empty", "expected"), [("one", 1.0), ("zero", 0.0)])
def test_empty_policy_both_empty(empty, expected):
    none = np.zeros((4, 4, 4), dtype=bool)
    assert metrics.dice(none, none, empty) == expected
    assert metrics.iou(none, none, empty) == expected
    assert metrics.lesion_f1(none, none, empty) == expected
    counts = metrics.lesion_counts(none, none)
    assert counts.precision(empty) == expected
    assert counts.recall(empty) == expected


def test_empty_policy_nan_and_default_and_invalid():
    none = np.zeros((4, 4), dtype=bool)
    assert math.isnan(metrics.dice(none, none, "nan"))
    assert math.isnan(metrics.iou(none, none, "nan"))
    assert math.isnan(metrics.lesion_f1(none, none, "nan"))
    assert metrics.dice(none, none) == 1.0  # default "one"
    with pytest.raises(ValueError, match="empty policy"):
        metrics.dice(none, none, "maybe")


def test_one_side_empty_is_a_failure_under_every_policy():
    none = np.zeros((4, 4), dtype=bool)
    some = box((4, 4), slice(1, 2), slice(1, 2))
    for empty in metrics.EMPTY_POLICIES:
        assert metrics.dice(some, none, empty) == 0.0
        assert metrics.dice(none, some, empty) == 0.0
        assert metrics.lesion_f1(some, none, empty) == 0.0
        false_alarm = metrics.lesion_counts(some, none)
        assert (false_alarm.precision(empty), false_alarm.recall(empty)) == (0.0, 0.0)
        missed = metrics.lesion_counts(none, some)
        assert (missed.precision(empty), missed.recall(empty)) == (0.0, 0.0)


def test_per_slice_dice_uses_only_slices_with_lesion():
    gt = np.zeros((4, 4, 3), dtype=bool)
    pred = np.zeros_like(gt)
    gt[0, 0:2, 0] = pred[0, 0:2, 0] = True  # slice 0: perfect, Dice 1
    gt[1, 0:2, 1] = True
    pred[1, 0, 1] = pred[3, 3, 1] = True  # slice 1: 1 shared of 2 + 2 -> Dice 0.5
    pred[2, 0:3, 2] = True  # slice 2: false positives only, no GT -> left out
    np.testing.assert_allclose(metrics.per_slice_dice(pred, gt, axis=2), [1.0, 0.5])
    assert metrics.per_slice_dice(np.zeros_like(gt), np.zeros_like(gt)).size == 0


def test_pooled_differs_from_mean_hand_counted():
    big = box((4, 4, 4), slice(0, 2), slice(0, 2), slice(0, 2))  # 8 voxels, predicted exactly
    small_gt = box((4, 4, 4), slice(3, 4), slice(3, 4), slice(0, 2))  # 2 voxels
    small_pred = box((4, 4, 4), slice(3, 4), slice(3, 4), slice(2, 4))  # 2 voxels, no overlap
    pooled = metrics.PooledOverlap()
    pooled.add(big, big)
    pooled.add(small_pred, small_gt)
    # pooled: intersection 8, sizes 8+8+2+2 = 20, union 8+4 = 12
    assert pooled.dice() == pytest.approx(0.8)
    assert pooled.iou() == pytest.approx(8 / 12)
    rows, summary = evaluate([("big", big, big, 1.0), ("small", small_pred, small_gt, 1.0)])
    assert [row["dice"] for row in rows] == [1.0, 0.0]
    assert summary["dice_mean"] == pytest.approx(0.5)  # per-subject mean
    assert summary["dice_std"] == pytest.approx(0.5)  # population std of (1, 0)
    assert summary["dice_pooled"] == pytest.approx(0.8)
    assert summary["iou_pooled"] == pytest.approx(2 / 3)


def test_nan_policy_excludes_empty_subjects_from_means():
    empty = np.zeros((3, 3, 3), dtype=bool)
    half_gt = box((3, 3, 3), slice(0, 1), slice(0, 2), slice(0, 1))  # 2 voxels
    half_pred = box((3, 3, 3), slice(0, 1), slice(0, 1), slice(0, 1))  # 1 of them
    cases = [("a", half_pred, half_gt, 1.0), ("e", empty, empty, 1.0)]
    _, with_nan = evaluate(cases, empty="nan")
    assert with_nan["dice_mean"] == pytest.approx(2 / 3)  # only subject a: 2*1/(1+2)
    assert with_nan["dice_n"] == 1
    assert with_nan["n_both_empty"] == 1
    _, with_one = evaluate(cases, empty="one")
    assert with_one["dice_mean"] == pytest.approx((2 / 3 + 1) / 2)
    _, with_zero = evaluate(cases, empty="zero")
    assert with_zero["dice_mean"] == pytest.approx(1 / 3)


def edge_and_corner_pair() -> tuple[np.ndarray, np.ndarray]:
    """Ground truth: two voxels sharing only an edge. Prediction: one of them, and a false
    positive of two voxels sharing only a corner."""
    gt = np.zeros((8, 8, 8), dtype=bool)
    gt[1, 1, 1] = gt[2, 2, 1] = True  # edge contact (two coordinates differ)
    pred = np.zeros_like(gt)
    pred[1, 1, 1] = True
    pred[5, 5, 5] = pred[6, 6, 6] = True  # corner contact (all three coordinates differ)
    return pred, gt


def test_lesions_touching_at_an_edge_or_corner_under_both_connectivities():
    pred, gt = edge_and_corner_pair()
    # 26: GT is 1 lesion (detected); prediction is {a} and {c, d}: 1 false positive
    full = metrics.lesion_counts(pred, gt, connectivity=26)
    assert (full.n_gt, full.n_pred, full.detected, full.false_positive) == (1, 2, 1, 1)
    assert full.f1() == pytest.approx(2 / 3)  # 2*1 / (2*1 + 1 + 0)
    assert full.count_difference == 1
    # 6: GT is 2 lesions (one missed); prediction is 3 lesions, 2 of them false positives
    faces = metrics.lesion_counts(pred, gt, connectivity=6)
    assert (faces.n_gt, faces.n_pred, faces.detected, faces.false_positive) == (2, 3, 1, 2)
    assert faces.f1() == pytest.approx(0.4)  # 2*1 / (2*1 + 2 + 1)
    assert faces.count_difference == 1
    assert metrics.lesion_f1(pred, gt, connectivity=6) == pytest.approx(0.4)
    assert metrics.lesion_counts(pred, gt) == full  # 26 is the default
    # 6 is SciPy's default labelling
    assert label_lesions(pred, 6)[1] == ndimage.label(pred)[1] == 3
    with pytest.raises(ValueError, match="connectivity"):
        label_lesions(pred, 18)


def test_volume_difference_in_voxels_and_hd95_with_the_voxel_spacing():
    pred, gt = edge_and_corner_pair()
    assert metrics.abs_volume_difference_voxels(pred, gt) == 1  # 3 vs 2 voxels
    one = np.zeros((12, 4, 4), dtype=bool)
    one[0, 1, 1] = True
    far = one.copy()
    far[10, 1, 1] = True  # a second voxel 10 voxels away along x
    assert metrics.hd95(one, one, (2.0, 1.0, 1.0)) == 0.0
    # pred -> gt distances {0, 10 * 2 mm}, gt -> pred {0}: 95th percentile (linear) = 19 mm
    assert metrics.hd95(far, one, (2.0, 1.0, 1.0)) == pytest.approx(19.0)
    assert metrics.hd95(one, far, (2.0, 1.0, 1.0)) == pytest.approx(19.0)  # symmetric
    assert metrics.hd95(far, one, (1.0, 3.0, 3.0)) == pytest.approx(9.5)
    assert math.isnan(metrics.hd95(np.zeros_like(one), one, (1.0, 1.0, 1.0)))


def test_report_rows_follow_the_connectivity_and_spacing():
    pred, gt = edge_and_corner_pair()
    rows, summary = evaluate([("s", pred, gt, 8.0, (2.0, 2.0, 2.0))], connectivity=6)
    assert rows[0]["lesion_f1"] == pytest.approx(0.4)
    assert rows[0]["abs_volume_difference_voxels"] == 1
    assert rows[0]["abs_volume_difference_ml"] == pytest.approx(0.008)
    assert rows[0]["false_positive_ml"] == pytest.approx(2 * 8.0 / 1000)  # c and d, 8 mm3 each
    # pred -> gt distances in voxels: a 0, c (5,5,5) -> b sqrt(34), d (6,6,6) -> b sqrt(57);
    # gt -> pred: a 0, b -> a sqrt(2). 95th percentile of the first (linear, at 1.9 of 0..2)
    expected = 2.0 * (math.sqrt(34) + 0.9 * (math.sqrt(57) - math.sqrt(34)))
    assert rows[0]["hd95_mm"] == pytest.approx(expected, rel=1e-6)
    assert summary["lesion_connectivity"] == 6
    # without a spacing, isotropic voxels of the given volume (8 mm3 -> 2 mm)
    same = evaluate([("s", pred, gt, 8.0)], connectivity=26)[0][0]
    assert same["hd95_mm"] == pytest.approx(rows[0]["hd95_mm"])
    assert same["lesion_f1"] == pytest.approx(2 / 3)


def test_dice_from_counts_by_hand_for_numbers_and_arrays():
    assert metrics.dice_from_counts(3, 8) == 0.75  # 2*3 / 8
    assert isinstance(metrics.dice_from_counts(3, 8), float)
    assert metrics.dice_from_counts(0, 0) == 1.0
    assert metrics.dice_from_counts(0, 0, "zero") == 0.0
    assert math.isnan(metrics.dice_from_counts(0, 0, "nan"))
    values = metrics.dice_from_counts(np.array([1, 0, 2]), np.array([4, 0, 4]))
    assert values.tolist() == [0.5, 1.0, 1.0]
    # the same value as counting the masks themselves
    rng = np.random.default_rng(3)
    pred, gt = rng.random((2, 9, 9, 4)) > 0.6
    overlap, size_sum = (pred & gt).sum(), pred.sum() + gt.sum()
    assert metrics.dice_from_counts(overlap, size_sum) == metrics.dice(pred, gt)
