"""Derivative names from BIDS input names follow the BIDS derivatives rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bids_rules import check_derivative_path

from strokeseg.errors import StrokesegError
from strokeseg.reports.bids import (
    BidsScan,
    dataset_description,
    dseg_tsv,
    find_scans,
    parse_name,
)

INPUTS = [
    "sub-r001s001_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz",  # ATLAS R2.0
    "sub-01_T1w.nii.gz",
    "sub-01_ses-pre_acq-mprage_rec-norm_run-2_T1w.nii",
    "sub-02_ses-1_acq-fast_run-1_label-L_desc-raw_space-orig_T1w.nii.gz",  # out of order
]


@pytest.mark.parametrize("name", INPUTS)
def test_derivative_names_follow_the_rules(name):
    entities, suffix, _ = parse_name(name)
    scan = BidsScan(Path(name), entities, suffix)
    for suffix, extension in (("mask", ".nii.gz"), ("mask", ".json"), ("dseg", ".nii.gz"),
                              ("dseg", ".tsv")):  # fmt: skip
        path = scan.derivative(suffix, extension)
        got = check_derivative_path(path)
        assert got["desc"] == "lesion"
        assert got.get("space") == entities.get("space")  # the input's space, as it was
        assert "label" not in got  # the input's label/desc describe the input


def test_atlas_name_in_full():
    scan = BidsScan(Path("x"), *parse_name(INPUTS[0])[:2])
    assert scan.derivative("mask", ".nii.gz").as_posix() == (
        "sub-r001s001/ses-1/anat/"
        "sub-r001s001_ses-1_space-MNI152NLin2009aSym_desc-lesion_mask.nii.gz"
    )
    assert scan.report.as_posix() == "sub-r001s001_ses-1.html"


def test_the_checker_rejects_wrong_names():
    """The rule checker itself catches order, pairs, suffix and folder mistakes."""
    bad = [
        "sub-1/anat/ses-1_sub-1_desc-lesion_mask.nii.gz",  # order
        "sub-1/anat/sub-1_desc-lesion_space-MNI_mask.nii.gz",  # order
        "sub-1/anat/sub-1_desc-lesion_label.nii.gz",  # suffix
        "sub-1/anat/sub-1_desc-les_ion_mask.nii.gz",  # not key-value
        "sub-1/anat/sub-1_label-L_desc-lesion_dseg.nii.gz",  # label not allowed on dseg
        "sub-2/anat/sub-1_desc-lesion_mask.nii.gz",  # folder
        "sub-1/anat/sub-1_desc-lesion_mask.csv",  # extension
    ]
    for path in bad:
        with pytest.raises(AssertionError):
            check_derivative_path(Path(path))


def test_find_scans_participant_labels_and_errors(tmp_path):
    (tmp_path / "dataset_description.json").write_text("{}")
    for sub in ("01", "02"):
        anat = tmp_path / f"sub-{sub}" / "ses-1" / "anat"
        anat.mkdir(parents=True)
        (anat / f"sub-{sub}_ses-1_T1w.nii.gz").write_bytes(b"")
        (anat / f"sub-{sub}_ses-1_label-L_desc-T1lesion_mask.nii.gz").write_bytes(b"")
        (anat / f"sub-{sub}_ses-1_T1w.json").write_text("{}")
    assert [s.subject for s in find_scans(tmp_path, "T1w")] == ["01", "02"]
    assert [s.subject for s in find_scans(tmp_path, "T1w", ["sub-02"])] == ["02"]
    assert [s.subject for s in find_scans(tmp_path, "T1w", ["01"])] == ["01"]
    with pytest.raises(StrokesegError, match="sub-03"):
        find_scans(tmp_path, "T1w", ["03"])
    with pytest.raises(StrokesegError, match="FLAIR"):
        find_scans(tmp_path, "FLAIR")
    with pytest.raises(StrokesegError, match="dataset_description.json"):
        find_scans(tmp_path / "sub-01", "T1w")


def test_dataset_description_and_lookup_table(tmp_path):
    description = dataset_description(tmp_path, "best.ckpt")
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "strokeseg"
    assert {"Name", "BIDSVersion"} <= set(description)
    assert json.loads(json.dumps(description)) == description
    assert dseg_tsv(2) == "index\tname\n1\tlesion-1\n2\tlesion-2\n"
