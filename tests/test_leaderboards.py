"""Metric presets against each leaderboard's own scoring: ATLAS R2.0's functions written out
again from its published scoring code, ISLES'22's from its ``eval_utils``, and the
``panoptica`` package as ISLES'26 configures it, on hand-made masks."""

from __future__ import annotations

import json
import math

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from strokeseg.errors import StrokesegError
from strokeseg.evaluation import metrics
from strokeseg.evaluation.leaderboards import metric_preset
from strokeseg.evaluation.report import evaluate

SHAPE = (10, 10, 6)
VOXEL_MM3 = 2.0


def box(*slices) -> np.ndarray:
    mask = np.zeros(SHAPE, dtype=bool)
    mask[slices] = True
    return mask


def cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(prediction, ground truth) pairs where face and full connectivity, and overlap and
    IoU matching, give different answers."""
    corner = box(slice(0, 1), slice(0, 1), slice(0, 1)) | box(slice(1, 2), slice(1, 2), slice(1, 2))
    big = box(slice(4, 9), slice(4, 9), slice(0, 4))  # 100 voxels
    return {
        # two voxels touching at a corner: two lesions by faces, one by full connectivity
        "corner": (corner, corner | box(slice(6, 8), slice(6, 8), slice(4, 6))),
        # a prediction that grazes a large lesion (IoU 0.04) and one that covers two small ones
        "graze": (
            box(slice(4, 5), slice(4, 5), slice(0, 4)) | box(slice(0, 2), slice(0, 4), slice(5, 6)),
            big
            | box(slice(0, 2), slice(0, 1), slice(5, 6))
            | box(slice(0, 2), slice(3, 4), slice(5, 6)),
        ),
        "both empty": (np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)),
        "missed": (np.zeros(SHAPE, bool), big),
        "false alarm": (corner, np.zeros(SHAPE, bool)),
    }


def rows(preset: str, probabilities: dict | None = None) -> dict[str, dict]:
    spacing = (2.0, 1.0, 1.0)
    found = [
        (sid, pred, gt, VOXEL_MM3, spacing, *((probabilities[sid],) if probabilities else ()))
        for sid, (pred, gt) in cases().items()
    ]
    scored, _ = evaluate(iter(found), metrics_preset=preset)
    return {row["subject"]: row for row in scored}


# --- ATLAS R2.0 (npnl/atlas2_grand_challenge scoring), written out again -------------------


def atlas_dice(truth, prediction):
    denominator = np.sum(prediction) + np.sum(truth)
    if denominator == 0:
        return 1.0
    return float(2 * np.sum(prediction.astype(float) * truth) / denominator)


def atlas_volume_difference(truth, prediction):  # the batchwise path the evaluation calls
    return abs(int(np.sum(prediction)) - int(np.sum(truth)))


def atlas_simple_lesion_count_difference(truth, prediction):
    _, pred_count = ndimage.label(prediction)
    _, truth_count = ndimage.label(truth)
    return abs(pred_count - truth_count)


def atlas_lesion_f1(truth, prediction):
    if not np.any(truth) and not np.any(prediction):
        return 1.0
    if np.any(truth) and not np.any(prediction):
        return 0.0
    tp = fp = fn = 0
    labelled, n = ndimage.label(truth.astype(bool))
    for i in range(1, n + 1):
        if np.max((labelled == i).astype(int) + prediction) > 1:
            tp += 1
        else:
            fn += 1
    labelled, n = ndimage.label(prediction.astype(bool))
    for i in range(1, n + 1):
        if np.max((labelled == i).astype(int) + truth) <= 1:
            fp += 1
    denominator = tp + (fp + fn) / 2
    return tp / denominator if denominator else 1.0


def test_atlas_preset_equals_the_atlas_scoring_functions():
    ours = rows("atlas")
    for sid, (pred, gt) in cases().items():
        p, t = pred.astype(np.uint8), gt.astype(np.uint8)
        row = ours[sid]
        assert row["dice"] == pytest.approx(atlas_dice(t, p)), sid
        assert row["abs_volume_difference_voxels"] == atlas_volume_difference(t, p), sid
        assert row["lesion_count_difference"] == atlas_simple_lesion_count_difference(t, p), sid
        assert row["lesion_f1"] == pytest.approx(atlas_lesion_f1(t, p)), sid
    # face connectivity: the corner pair is two lesions, both found; plus a missed one
    assert (ours["corner"]["n_gt_lesions"], ours["corner"]["lesion_f1"]) == (3, 0.8)


# --- ISLES'22 (ezequieldlrosa/isles22 eval_utils, cc3d 26-connectivity), written out again ---


def isles22_lesion_f1(truth, prediction, empty_value=1.0):
    full = np.ones((3, 3, 3))
    tp = fp = fn = 0
    labelled, n = ndimage.label(truth, structure=full)
    for i in range(1, n + 1):
        if np.logical_and(labelled == i, prediction).any():
            tp += 1
        else:
            fn += 1
    labelled, n = ndimage.label(prediction, structure=full)
    for i in range(1, n + 1):
        if not np.logical_and(labelled == i, truth).any():
            fp += 1
    return empty_value if tp + fp + fn == 0 else tp / (tp + (fp + fn) / 2)


def isles22_count_difference(truth, prediction):
    full = np.ones((3, 3, 3))
    return abs(
        ndimage.label(truth, structure=full)[1] - ndimage.label(prediction, structure=full)[1]
    )


def test_isles22_preset_equals_the_isles22_scoring_functions():
    ours = rows("isles22")
    for sid, (pred, gt) in cases().items():
        row = ours[sid]
        assert row["lesion_f1"] == pytest.approx(isles22_lesion_f1(gt, pred)), sid
        assert row["lesion_count_difference"] == isles22_count_difference(gt, pred), sid
        volume = abs(int(gt.sum()) - int(pred.sum())) * VOXEL_MM3 / 1000  # voxel size in mL
        assert row["abs_volume_difference_ml"] == pytest.approx(volume), sid
    assert ours["corner"]["n_gt_lesions"] == 2  # the corner pair is one lesion here


# --- ISLES'26: panoptica, as the challenge's eval_utils sets it up --------------------------


def test_isles26_preset_equals_panoptica_matching_at_iou_one_quarter():
    panoptica = pytest.importorskip(
        "panoptica", reason="panoptica not installed: pip install 'strokeseg[leaderboards]'"
    )
    evaluator = panoptica.Panoptica_Evaluator(
        expected_input=panoptica.InputType.SEMANTIC,
        instance_approximator=panoptica.ConnectedComponentsInstanceApproximator(),
        instance_matcher=panoptica.NaiveThresholdMatching(matching_threshold=0.25),
    )
    ours = rows("isles26")
    for sid, (pred, gt) in cases().items():
        result = evaluator.evaluate(pred.astype(int), gt.astype(int), verbose=False)["ungrouped"]
        row = ours[sid]
        count_difference = abs(result.n_ref_instances - result.n_pred_instances)
        assert row["lesion_count_difference"] == count_difference, sid
        if result.n_ref_instances == 0 and result.n_pred_instances == 0:
            assert row["lesion_f1"] == 1.0 and row["dice"] == 1.0  # the challenge's empty value
        else:
            assert row["lesion_f1"] == pytest.approx(result.rq), sid
            assert row["dice"] == pytest.approx(result.global_bin_dsc), sid
    # the graze: IoU 0.04 with the large lesion, and one blob over two lesions matches one of
    # them (IoU 2/8 = 0.25 each): 1 true positive of 3 true and 2 predicted lesions
    assert ours["graze"]["lesion_f1"] == pytest.approx(2 / (2 + 1 + 2))
    assert rows("isles22")["graze"]["lesion_f1"] == 1.0  # every lesion touched


def test_pr_auc_by_hand_and_against_scikit_learn():
    gt = np.array([1, 0, 1, 0], bool)
    probability = np.array([0.9, 0.8, 0.7, 0.1])
    # thresholds 0.9, 0.8, 0.7, 0.1: (recall, precision) (0.5, 1), (0.5, 1/2), (1, 2/3),
    # (1, 1/2) after (0, 1): trapezoids 0.5 x 1 + 0 + 0.5 x (1/2 + 2/3) / 2 + 0 = 19/24
    assert metrics.pr_auc(probability, gt) == pytest.approx(19 / 24)
    assert metrics.pr_auc(np.full(4, 0.2), np.zeros(4, bool)) == 1.0  # flat map, no lesion
    assert metrics.pr_auc(probability, np.zeros(4, bool)) == 0.0
    sklearn = pytest.importorskip("sklearn.metrics", reason="scikit-learn not installed")
    rng = np.random.default_rng(0)
    gt = rng.random(SHAPE) < 0.1
    probability = np.clip(gt * 0.3 + rng.random(SHAPE) * 0.8, 0, 1).round(2)  # with ties
    precision, recall, _ = sklearn.precision_recall_curve(gt.ravel(), probability.ravel())
    expected = sklearn.auc(recall, precision)
    assert metrics.pr_auc(probability, gt) == pytest.approx(expected, rel=1e-9)
    scored = rows("isles26", {sid: probability for sid in cases()})
    assert scored["graze"]["pr_auc"] == pytest.approx(
        metrics.pr_auc(probability, cases()["graze"][1])
    )
    assert math.isnan(rows("isles26")["graze"]["pr_auc"])  # masks alone: no probability map


def test_a_leaderboard_keeps_its_own_connectivity():
    assert metric_preset("strokeseg", 6).connectivity == 6
    with pytest.raises(StrokesegError, match="ATLAS R2.0 counts lesions with 6-connectivity"):
        metric_preset("atlas", 26)
    with pytest.raises(StrokesegError, match="unknown preset"):
        metric_preset("brats")


@pytest.mark.slow
def test_evaluate_cli_reports_the_leaderboards_columns(cli, tmp_path):
    for sid, (pred, gt) in cases().items():
        for folder, mask in (("pred", pred), ("gt", gt)):
            path = tmp_path / folder / f"{sid.replace(' ', '_')}.nii.gz"
            path.parent.mkdir(exist_ok=True)
            nib.save(nib.Nifti1Image(mask.astype(np.uint8), np.diag([2.0, 1, 1, 1])), path)
    args = ["evaluate", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt"]
    refused = cli(*args, "--out", tmp_path / "no", "--metrics", "atlas", "--connectivity", "26")
    assert refused.returncode == 1 and "leave --connectivity out" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (tmp_path / "no").exists()
    result = cli(*args, "--out", tmp_path / "out", "--metrics", "atlas")
    assert result.returncode == 0, result.stderr
    assert "as ATLAS R2.0 scores them" in result.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert summary["metrics"] == "atlas" and summary["lesion_connectivity"] == 6
    board = summary["leaderboard"]
    assert board["Lesion-wise F1"] == pytest.approx(summary["lesion_f1_mean"])
    assert board["Volume Difference (voxels)"] == pytest.approx(
        np.mean([atlas_volume_difference(g, p) for p, g in cases().values()])
    )
