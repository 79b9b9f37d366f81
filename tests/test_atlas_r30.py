"""ATLAS R3.0 as it ships (native space, per-site folders, metadata tables): read with the
right image/mask pairs and sites, detected automatically, reported by ``strokeseg check``."""

from __future__ import annotations

import json

import numpy as np
from data_files import volume_and_mask, write_nifti

from strokeseg.data import find_dataset, load_subject

METADATA = "dataset,session,days_post_stroke,chronicity,site\nATLAS,ses-1,200,chronic,{}\n"


def _r30(root, site, sub, *, mask=True, table_site=None):
    anat = root / site / sub / "ses-1" / "anat"
    stem = f"{sub}_ses-1_space-orig"
    image, lesion = volume_and_mask(len(sub))
    write_nifti(anat / f"{stem}_desc-brain_T1w.nii.gz", image)
    if mask:
        write_nifti(anat / f"{stem}_label-lesion_desc-T1lesion_mask.nii.gz", lesion)
    if table_site is not None:
        (anat / f"{sub}_ses-1_metadata.csv").write_text(METADATA.format(table_site))
    return anat, stem, lesion


def test_atlas_r30_pairs_images_with_masks_and_keeps_the_site(tmp_path):
    _, _, lesion = _r30(tmp_path, "R001", "sub-r001s001", table_site="R001")
    _r30(tmp_path, "R052", "sub-r052s010", table_site="R052")
    anat, stem, _ = _r30(tmp_path, "SOOP", "sub-soop0001", table_site="")  # empty: the folder
    _r30(tmp_path, "R071", "sub-r071s002", mask=False)
    (anat / f"._{stem}_desc-brain_T1w.nii.gz").write_bytes(b"\x00resource fork")

    dataset = find_dataset(tmp_path)
    assert dataset.layout == "atlas_r3.0" and dataset.modality == "mri"
    got = {s.id: (s.site, [m.name for m in s.masks], s.image.name) for s in dataset.subjects}
    assert got == {
        "sub-r001s001": (
            "R001",
            ["sub-r001s001_ses-1_space-orig_label-lesion_desc-T1lesion_mask.nii.gz"],
            "sub-r001s001_ses-1_space-orig_desc-brain_T1w.nii.gz",
        ),
        "sub-r052s010": (
            "R052",
            ["sub-r052s010_ses-1_space-orig_label-lesion_desc-T1lesion_mask.nii.gz"],
            "sub-r052s010_ses-1_space-orig_desc-brain_T1w.nii.gz",
        ),
        "sub-soop0001": (
            "SOOP",
            ["sub-soop0001_ses-1_space-orig_label-lesion_desc-T1lesion_mask.nii.gz"],
            "sub-soop0001_ses-1_space-orig_desc-brain_T1w.nii.gz",
        ),
        "sub-r071s002": ("R071", [], "sub-r071s002_ses-1_space-orig_desc-brain_T1w.nii.gz"),
    }
    _, union = load_subject(next(s for s in dataset.subjects if s.id == "sub-r001s001"))
    np.testing.assert_array_equal(union, lesion)


def test_the_site_column_of_the_metadata_wins_over_the_folder(tmp_path):
    _r30(tmp_path, "Training", "sub-r003s001", table_site="R003")
    assert find_dataset(tmp_path).subjects[0].site == "R003"


def test_check_reports_the_layout_and_the_sites(tmp_path, cli):
    _r30(tmp_path, "R001", "sub-r001s001", table_site="R001")
    _r30(tmp_path, "R001", "sub-r001s002", table_site="R001")
    _r30(tmp_path, "SOOP", "sub-soop0003", table_site="SOOP")
    result = cli("check", "--data", tmp_path, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["layout"] == "atlas_r3.0" and report["subjects"] == 3
    assert report["sites"] == {"R001": 2, "SOOP": 1}
    text = cli("check", "--data", tmp_path).stdout
    assert "sites:     2 (R001 2, SOOP 1)" in text
