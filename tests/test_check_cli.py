"""``strokeseg check``: statistics, problems, and one-line errors through the real command line."""

from __future__ import annotations

import json

import numpy as np
from data_files import volume_and_mask, write_nifti

from strokeseg.cli import main


def test_check_reports_layout_slices_and_lesion_volumes(tmp_path, capsys):
    image, mask = volume_and_mask()
    for sub, m in (("sub-1", mask), ("sub-2", np.zeros_like(mask))):
        anat = tmp_path / sub / "ses-1" / "anat"
        stem = f"{sub}_ses-1_space-MNI152NLin2009aSym"
        write_nifti(anat / f"{stem}_T1w.nii.gz", image)
        write_nifti(anat / f"{stem}_label-L_desc-T1lesion_mask.nii.gz", m)

    assert main(["check", "--data", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["layout"], report["subjects"], report["slices"]) == ("atlas_r2.0", 2, 16)
    # 4 x 5 x 3 lesion voxels of 1 mm^3 = 0.06 mL; the empty mask counts as 0 mL
    assert report["lesion_volume_ml"] == {"min": 0.0, "median": 0.03, "max": 0.06}
    assert report["empty_masks"] == ["sub-2"] and report["problems"] == []

    assert main(["check", "--data", str(tmp_path), "--layout", "atlas_r2.0"]) == 0
    text = capsys.readouterr().out
    assert "atlas_r2.0 (mri)" in text and "subjects:  2" in text
    assert "empty masks: 1 (sub-2)" in text

    assert main(["check", "--data", str(tmp_path / "missing")]) == 1
    missing = tmp_path / "missing"
    assert capsys.readouterr().err == f"strokeseg check: error: {missing}: folder not found\n"


def test_check_lists_every_bad_file_and_exits_nonzero(tmp_path, cli):
    image, mask = volume_and_mask()
    nan_image = image.copy()
    nan_image[0, 0, 0] = np.nan
    labels = mask * 3
    files = {
        "a": (image, mask[:, :, :4]),  # shape mismatch
        "b": (nan_image, mask),
        "c": (image, labels),  # labels {0, 3}
        "d": (image, mask),
        "e": (image, mask),
    }
    for name, (img, m) in files.items():
        write_nifti(tmp_path / "images" / f"{name}.nii.gz", img)
        write_nifti(tmp_path / "masks" / f"{name}_seg.nii.gz", m)
    truncated = tmp_path / "images" / "d.nii.gz"
    truncated.write_bytes(truncated.read_bytes()[:200])
    (tmp_path / "masks" / "e_seg.nii.gz").write_bytes(b"plain bytes, not gzip")

    result = cli("check", "--data", tmp_path, "--json")
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    problems = json.loads(result.stdout)["problems"]
    assert len(problems) == 5
    expected = [
        ("masks/a_seg.nii.gz", "mask shape (20, 24, 4) != image shape"),
        ("images/b.nii.gz", "NaN/Inf"),
        ("masks/c_seg.nii.gz", "mask values must be 0 or 1, found 3"),
        ("images/d.nii.gz", "truncated"),
        ("masks/e_seg.nii.gz", "not a gzip file"),
    ]
    for problem, (name, reason) in zip(problems, expected, strict=True):
        assert problem.startswith(str(tmp_path / name)) and reason in problem, problem


def test_empty_folder_gives_one_line_and_no_traceback(tmp_path, cli):
    (tmp_path / "empty").mkdir()
    result = cli("check", "--data", tmp_path / "empty")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"strokeseg check: error: {tmp_path / 'empty'}: folder is empty\n"


def test_unreadable_dicom_series_is_a_problem(tmp_path, capsys):
    series = tmp_path / "patient1"
    series.mkdir()
    (series / "1.dcm").write_bytes(b"\x00" * 300)
    assert main(["check", "--data", str(tmp_path)]) == 1
    assert f"  {series}: no readable DICOM series" in capsys.readouterr().out.splitlines()
