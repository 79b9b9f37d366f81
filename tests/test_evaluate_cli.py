"""``strokeseg evaluate --pred --gt`` end to end on small NIfTI folders, against hand counts."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest

from strokeseg.cli import main
from strokeseg.errors import StrokesegError
from strokeseg.evaluation.matching import match_files, subject_id

SPACING = np.diag([2.0, 1.0, 1.0, 1.0])  # 2 mm3 voxels


def save(array: np.ndarray, path, affine=SPACING) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array.astype(np.uint8), affine), path)


def box(shape, *slices) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[slices] = True
    return mask


@pytest.fixture
def folders(tmp_path):
    """Two subjects whose metrics are counted by hand in the comments."""
    shape = (6, 6, 4)
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    # s1: GT 8 voxels, prediction 12 voxels, 4 shared; one lesion each, detected
    save(box(shape, slice(0, 2), slice(0, 2), slice(0, 2)), gt / "s1.nii.gz")
    save(box(shape, slice(1, 4), slice(0, 2), slice(0, 2)), pred / "s1_mask.nii.gz")
    # s2: GT lesions A (4 voxels) and B (4 voxels); prediction finds A exactly, misses B and
    # adds a 1-voxel false positive. Stored flipped along x (an LPS-like affine): same grid.
    a = box(shape, slice(0, 2), slice(0, 2), slice(0, 1))
    b = box(shape, slice(4, 6), slice(4, 6), slice(3, 4))
    fp = box(shape, slice(0, 1), slice(5, 6), slice(3, 4))
    save(a | b, gt / "s2_seg.nii.gz")
    flip = SPACING @ np.array([[-1, 0, 0, 5], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    save((a | fp)[::-1], pred / "s2.nii.gz", affine=flip)
    return pred, gt


def read_csv(path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as handle:
        return {row["subject"]: row for row in csv.DictReader(handle)}


def assert_one_clean_line(result) -> None:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_evaluate_writes_hand_computed_metrics_and_refuses_overwrite(cli, folders, tmp_path):
    pred, gt = folders
    out = tmp_path / "eval"
    result = cli("evaluate", "--pred", pred, "--gt", gt, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "Dice, per-subject 3D" in result.stdout

    rows = read_csv(out / "per_subject.csv")
    assert list(rows) == ["s1", "s2"]
    s1, s2 = rows["s1"], rows["s2"]
    assert float(s1["dice"]) == pytest.approx(2 * 4 / (12 + 8))
    assert float(s1["iou"]) == pytest.approx(4 / 16)
    assert float(s1["gt_volume_ml"]) == pytest.approx(0.016)  # 8 voxels * 2 mm3
    assert float(s1["abs_volume_difference_ml"]) == pytest.approx(0.008)  # 4 voxels * 2 mm3
    assert float(s1["lesion_f1"]) == 1.0
    assert float(s2["dice"]) == pytest.approx(2 * 4 / (5 + 8))
    assert float(s2["iou"]) == pytest.approx(4 / 9)
    assert float(s2["abs_volume_difference_ml"]) == pytest.approx(0.006)  # 3 voxels * 2 mm3
    assert (s2["n_gt_lesions"], s2["n_pred_lesions"]) == ("2", "2")
    assert (s2["lesions_detected"], s2["false_positive_lesions"]) == ("1", "1")
    assert float(s2["lesion_f1"]) == pytest.approx(2 / (2 + 1 + 1))
    assert s2["lesion_count_difference"] == "0"

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["n_subjects"] == 2
    assert summary["empty_policy"] == "one"
    assert summary["dice_mean"] == pytest.approx((0.4 + 8 / 13) / 2)
    assert summary["dice_std"] == pytest.approx(abs(0.4 - 8 / 13) / 2)
    assert summary["iou_mean"] == pytest.approx((0.25 + 4 / 9) / 2)
    assert summary["dice_pooled"] == pytest.approx(2 * 8 / 33)  # shared 4+4; sizes 20+13
    assert summary["iou_pooled"] == pytest.approx(8 / 25)  # unions 16+9
    assert summary["lesion_f1_mean"] == pytest.approx(0.75)
    assert summary["abs_volume_difference_ml_mean"] == pytest.approx(0.007)
    assert summary["lesion_count_difference_mean"] == 0

    before = (out / "summary.json").read_bytes()
    again = cli("evaluate", "--pred", pred, "--gt", gt, "--out", out, "--empty", "nan")
    assert_one_clean_line(again)
    assert "already exists" in again.stderr and "--overwrite" in again.stderr
    assert (out / "summary.json").read_bytes() == before

    # --overwrite replaces them (in-process entry point: one subprocess fewer, same code path)
    argv = ["evaluate", "--pred", str(pred), "--gt", str(gt), "--out", str(out)]
    assert main([*argv, "--empty", "nan", "--overwrite"]) == 0
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["empty_policy"] == "nan"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_mismatched_shapes_give_one_clean_line(cli, folders, tmp_path):
    pred, gt = folders
    save(np.zeros((6, 6, 5), dtype=bool), pred / "s1_mask.nii.gz")
    out = tmp_path / "eval"
    result = cli("evaluate", "--pred", pred, "--gt", gt, "--out", out)
    assert_one_clean_line(result)
    assert "s1_mask.nii.gz" in result.stderr and "s1.nii.gz" in result.stderr
    assert "shape" in result.stderr
    assert not (out / "per_subject.csv").exists() and not (out / "summary.json").exists()


def test_affine_mismatch_and_missing_prediction_are_errors(folders):
    pred, gt = folders
    save(box((6, 6, 4), slice(0, 1)), pred / "s1_mask.nii.gz", affine=np.eye(4))
    from strokeseg.evaluation.matching import load_case

    sid, pred_path, gt_paths = match_files(pred, gt)[0]
    with pytest.raises(StrokesegError, match="affine differs from ground truth .*s1.nii.gz"):
        load_case(sid, pred_path, gt_paths)
    (pred / "s2.nii.gz").unlink()
    with pytest.raises(StrokesegError, match=r"no prediction for 1 subject\(s\): s2"):
        match_files(pred, gt)


def test_subject_id_rule():
    bids_gt = "sub-r001s001_ses-1_space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask.nii.gz"
    bids_pred = "sub-r001s001_ses-1_space-MNI152NLin2009aSym_T1w_mask.nii.gz"
    assert subject_id(bids_gt) == subject_id(bids_pred) == "sub-r001s001_ses-1"
    assert subject_id("c0001s0004t01_LesionSmooth_1_stx.nii.gz") == "c0001s0004t01"
    assert subject_id("c0001s0004t01_t1w_deface_stx_mask.nii.gz") == "c0001s0004t01"
    assert subject_id("p7_seg.nii") == subject_id("p7_label.nii.gz") == "p7"
    assert subject_id("ATLAS_0001.nii.gz") == "ATLAS_0001"


def test_matching_in_dataset_roots(tmp_path):
    """--gt may be an ATLAS R2.0 BIDS root (images skipped) or an nnU-Net root (_0000 tag)."""
    anat = tmp_path / "bids" / "sub-r001s001" / "ses-1" / "anat"
    stem = "sub-r001s001_ses-1_space-MNI152NLin2009aSym"
    save(np.full((3, 3, 3), 1), anat / f"{stem}_T1w.nii.gz")  # an image, not a mask
    save(np.zeros((3, 3, 3)), anat / f"{stem}_label-L_desc-T1lesion_mask.nii.gz")
    save(np.zeros((3, 3, 3)), anat / f".{stem}_mask.nii.gz")  # hidden: skipped
    save(np.zeros((3, 3, 3)), tmp_path / "pred" / f"{stem}_T1w_mask.nii.gz")
    [(sid, pred_path, gt_paths)] = match_files(tmp_path / "pred", tmp_path / "bids")
    assert sid == "sub-r001s001_ses-1"
    assert [p.name for p in gt_paths] == [f"{stem}_label-L_desc-T1lesion_mask.nii.gz"]

    nnunet = tmp_path / "nnunet"
    save(np.full((3, 3, 3), 1), nnunet / "imagesTr" / "case_0000.nii.gz")
    save(np.zeros((3, 3, 3)), nnunet / "labelsTr" / "case.nii.gz")
    save(np.zeros((3, 3, 3)), tmp_path / "pred2" / "case_0000_mask.nii.gz")
    [(sid, pred_path, _)] = match_files(tmp_path / "pred2", nnunet)
    assert (sid, pred_path.name) == ("case", "case_0000_mask.nii.gz")


def test_a_gt_folder_of_masks_named_by_subject_is_read_whatever_the_names(tmp_path):
    """Plain masks named sub-01.nii.gz ... are masks; only image marks are skipped."""
    shape = (4, 4, 3)
    for name in ("sub-01", "sub-02_ses-1", "case7"):
        save(box(shape, slice(0, 2), slice(0, 2), slice(0, 1)), tmp_path / "gt" / f"{name}.nii.gz")
        save(
            box(shape, slice(0, 1), slice(0, 2), slice(0, 1)),
            tmp_path / "p" / f"{name}_mask.nii.gz",
        )
    save(np.full(shape, 1), tmp_path / "gt" / "sub-01_T1w.nii.gz")  # an image: skipped
    save(np.full(shape, 1), tmp_path / "gt" / "case7_0000.nii.gz")  # nnU-Net channel: skipped
    save(np.full(shape, 1), tmp_path / "gt" / "imagesTs" / "sub-02_ses-1.nii.gz")  # image folder
    matched = match_files(tmp_path / "p", tmp_path / "gt")
    assert [(sid, [p.name for p in gts]) for sid, _, gts in matched] == [
        ("case7", ["case7.nii.gz"]),
        ("sub-01", ["sub-01.nii.gz"]),
        ("sub-02_ses-1", ["sub-02_ses-1.nii.gz"]),
    ]
    out = tmp_path / "out"
    assert (
        main(
            [
                "evaluate",
                "--pred",
                str(tmp_path / "p"),
                "--gt",
                str(tmp_path / "gt"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = list(csv.DictReader((out / "per_subject.csv").open(encoding="utf-8")))
    assert [float(r["dice"]) for r in rows] == pytest.approx([2 * 2 / 6] * 3)  # 2 of 4+2


def test_a_gt_folder_of_images_only_says_what_was_skipped(tmp_path):
    save(np.full((3, 3, 3), 1), tmp_path / "gt" / "sub-01_T1w.nii.gz")
    save(np.zeros((3, 3, 3)), tmp_path / "p" / "sub-01_mask.nii.gz")
    with pytest.raises(StrokesegError, match=r"no NIfTI masks .*\(1 image\(s\) skipped"):
        match_files(tmp_path / "p", tmp_path / "gt")
