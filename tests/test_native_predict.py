"""Native scans on a template-space checkpoint, through the real CLI: registration to the
template, segmentation there, the mask back in the scan's own geometry (inference/native.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import run_cli
from data_files import write_nifti
from native_scans import grid, moved, oblique, pose, template_arrays

from strokeseg.data.io import read_grid
from strokeseg.data.preprocessing import TrainingData
from strokeseg.data.template import grid_space
from strokeseg.models import create_model

pytest.importorskip("SimpleITK")
pytest.importorskip("nilearn")

ISLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "isles22-samples"
POSE = pose((6, -4, 9), (5, -8, 12))


def template_subject(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The template T1 (white matter near 87) with noise and a bright sphere of 22-26 mm
    radius in the brain (the network below segments it)."""
    rng = np.random.default_rng(seed)
    t1, brain, _ = template_arrays()
    image = 100 * t1 + rng.normal(0, 2, t1.shape).astype(np.float32)
    centre = np.array([98, 120, 95]) + rng.integers(-10, 10, 3)
    index = np.indices(brain.shape, sparse=True)
    r2 = sum((i - c) ** 2 for i, c in zip(index, centre, strict=True))
    mask = ((r2 <= rng.uniform(22, 26) ** 2) & brain).astype(np.uint8)
    image[mask == 1] = 150 + rng.normal(0, 2, int(mask.sum()))
    return np.maximum(image, 0).astype(np.float32), mask


THRESHOLD = 0.8
"""The network below: lesion probability sigmoid(40 (x - 0.8)) of the normalised intensity x."""


def threshold_unet() -> torch.nn.Module:
    """A U-Net whose weights pass the input along the top level only (an identity 3x3 conv at
    each of its four convolutions, everything else zero) to a head that thresholds it."""
    model = create_model("unet", width=0.0625, batch_norm=False)
    for p in model.parameters():
        torch.nn.init.zeros_(p)
    for block in (model.encoder[0], model.decoder[-1]):
        for conv in (m for m in block.modules() if isinstance(m, torch.nn.Conv2d)):
            conv.weight.data[0, 0, 1, 1] = 1.0
    model.head.weight.data[0, 0] = 40.0
    model.head.bias.data[0] = -40.0 * THRESHOLD
    return model


@pytest.fixture(scope="module")
def template_run(tmp_path_factory) -> Path:
    """A checkpoint of :func:`threshold_unet` that says it was trained on the template grid."""
    model = threshold_unet()
    meta = {
        "model_name": "unet",
        "model_kwargs": {"width": 0.0625, "batch_norm": False},
        "data": {"layout": "folders", "modality": "mri", "space": "template"},
        "config": {},
    }
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp("template_run") / "best.ckpt"
    torch.save({"state_dict": state, "strokeseg": meta}, path)
    return path


def predict(checkpoint: Path, scan: Path, out: Path, *flags: str):
    result = run_cli("predict", "-i", scan, "-o", out, "--checkpoint", checkpoint, *flags)
    return result, out / (scan.name.replace(".nii.gz", "") + "_mask.nii.gz")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return 2 * float((a & b).sum()) / max(int(a.sum() + b.sum()), 1)


def test_training_records_the_space_of_its_scans(tiny_run, tmp_path):
    meta = torch.load(tiny_run / "best.ckpt", map_location="cpu", weights_only=True)
    space = meta["strokeseg"]["data"]["preprocessing"]["space"]
    assert space == "native"  # blob scans, off the template
    t_affine = template_arrays()[2]
    on = write_nifti(tmp_path / "on.nii.gz", np.zeros((197, 233, 189), np.uint8), t_affine)
    shape, lps = grid((1.0, 1.0, 1.0), "LPS", fov_mm=(197.0, 233.0, 189.0), centre=(0, -18, 22))
    lps[:3, 3] = t_affine[:3, 3] + np.array([196.0, 232.0, 0.0])  # the same grid stored LPS
    flipped = write_nifti(tmp_path / "lps.nii.gz", np.zeros(shape, np.uint8), lps)
    assert grid_space(read_grid(p) for p in (on, flipped)) == "template"
    off = write_nifti(
        tmp_path / "off.nii.gz", np.zeros((197, 233, 189), np.uint8), lps @ pose(shift_mm=(1, 0, 0))
    )
    assert grid_space(read_grid(p) for p in (on, off)) == "native"


def test_older_checkpoints_count_as_template_space_with_the_mirror():
    def space(data):
        return TrainingData.from_meta({"data": data}).preprocessing.space

    assert space({"mirror": True}) == "template"
    assert space({}) == "unknown"
    assert space({"space": "native", "mirror": True}) == "native"


@pytest.mark.slow
def test_a_moved_scan_gets_the_unmoved_mask_moved(template_run, tmp_path):
    image, _ = template_subject(10)
    t_affine = template_arrays()[2]
    unmoved = write_nifti(tmp_path / "in" / "unmoved.nii.gz", image, t_affine)
    result, mask_path = predict(template_run, unmoved, tmp_path / "a", "--report")
    assert result.returncode == 0, result.stderr
    assert "registered" not in result.stderr  # on the template grid: no registration
    reference = nib.load(mask_path).get_fdata()
    assert 40_000 < reference.sum() < 80_000  # the sphere (22-26 mm radius) alone

    shape, affine = grid((1.0, 1.0, 1.0), "LPS", fov_mm=(200.0, 240.0, 210.0))
    scan = write_nifti(
        tmp_path / "in2" / "moved.nii.gz", moved(image, t_affine, POSE, shape, affine), affine
    )
    result, mask_path = predict(template_run, scan, tmp_path / "b", "--report")
    assert result.returncode == 0, result.stderr
    assert "moved.nii.gz: registered to the template" in result.stderr
    # territories and MNI centroids through the registration: as for the unmoved scan
    rows = [
        next(csv.DictReader((tmp_path / run / "lesions_by_lesion.csv").open()))
        for run in ("a", "b")
    ]
    assert rows[1]["territory"] and rows[1]["territory"] == rows[0]["territory"]
    assert float(rows[1]["territory_percent"]) == pytest.approx(
        float(rows[0]["territory_percent"]), abs=3.0
    )
    for axis in "xyz":
        key = f"mni_{axis}_mm"
        assert float(rows[1][key]) == pytest.approx(float(rows[0][key]), abs=1.5)
    mask = nib.load(mask_path)
    source = nib.load(scan)
    assert mask.shape == source.shape and np.array_equal(mask.affine, source.affine)
    assert nib.aff2axcodes(mask.affine) == ("L", "P", "S")
    expected = moved(reference, t_affine, POSE, shape, affine, order=0)
    assert dice(mask.get_fdata(), expected) >= 0.95


def test_register_never_segments_the_scan_in_its_own_space(template_run, tmp_path):
    image, _ = template_subject(11)
    t_affine = template_arrays()[2]
    shape, affine = grid((1.5, 1.5, 1.5), "RAS")
    scan = write_nifti(tmp_path / "s.nii.gz", moved(image, t_affine, POSE, shape, affine), affine)
    result, mask_path = predict(template_run, scan, tmp_path / "o", "--register", "never")
    assert result.returncode == 0, result.stderr
    assert "registered" not in result.stderr and mask_path.is_file()


@pytest.mark.slow
def test_noise_is_refused_with_one_line_and_no_mask(template_run, tmp_path):
    noise = np.random.default_rng(0).random((150, 180, 150)).astype(np.float32) * 100
    write_nifti(tmp_path / "in" / "noise.nii.gz", noise, np.diag([1.2, 1.2, 1.2, 1.0]))
    image, _ = template_subject(12)
    shape, affine = grid((1.2, 1.2, 1.2), "LAS")
    write_nifti(
        tmp_path / "in" / "good.nii.gz",
        moved(image, template_arrays()[2], POSE, shape, affine),
        affine,
    )
    result = run_cli(
        "predict", "-i", tmp_path / "in", "-o", tmp_path / "o", "--checkpoint", template_run
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert (
        len(errors) == 1 and "noise.nii.gz: cannot register the scan to the template" in errors[0]
    )
    assert "correlation" in errors[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "o" / "noise_mask.nii.gz").exists()
    assert (tmp_path / "o" / "good_mask.nii.gz").is_file()
    rows = (tmp_path / "o" / "lesions.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("good,")


@pytest.mark.skipif(not ISLES.is_dir(), reason=f"{ISLES} (real ISLES'22 scans) is absent")
def test_a_real_oblique_grid_keeps_its_geometry(template_run, tmp_path):
    """A T1-like scan on the grid and header of a real ISLES'22 DWI (2 mm, oblique, LAS)."""
    source = nib.load(next(ISLES.rglob("*_dwi.nii.gz")))
    image, _ = template_subject(13)
    data = moved(image, template_arrays()[2], POSE, source.shape, source.affine)
    scan = tmp_path / "in" / "isles_grid.nii.gz"
    scan.parent.mkdir()
    nib.save(nib.Nifti1Image(data, source.affine, source.header), scan)
    result, mask_path = predict(template_run, scan, tmp_path / "o")
    assert result.returncode == 0, result.stderr
    mask, written = nib.load(mask_path), nib.load(scan)
    assert mask.shape == written.shape
    np.testing.assert_array_equal(mask.affine, written.affine)
    assert mask.header.get_qform(coded=True)[1] == written.header.get_qform(coded=True)[1]
    assert mask.header.get_sform(coded=True)[1] == written.header.get_sform(coded=True)[1]


def test_an_oblique_grid_keeps_its_geometry(template_run, tmp_path):
    image, _ = template_subject(14)
    shape, affine = grid((1.1, 1.1, 1.3), "RAS", fov_mm=(200.0, 240.0, 200.0))
    affine = oblique(affine)
    scan = write_nifti(
        tmp_path / "in" / "oblique.nii.gz",
        moved(image, template_arrays()[2], POSE, shape, affine),
        affine,
    )
    result, mask_path = predict(template_run, scan, tmp_path / "o")
    assert result.returncode == 0, result.stderr
    mask = nib.load(mask_path)
    assert mask.shape == shape and np.allclose(mask.affine, affine, atol=1e-5)
    assert json.dumps(nib.aff2axcodes(mask.affine)) == json.dumps(nib.aff2axcodes(affine))


@pytest.mark.slow
def test_evaluate_scores_an_atlas_r30_cohort_through_the_registration(template_run, tmp_path):
    """A template-space checkpoint (trained on another layout) evaluated on every subject of a
    native ATLAS R3.0 tree: the layout is detected, each scan registered, the mask scored."""
    image, mask = template_subject(12)
    t_affine = template_arrays()[2]
    shape, affine = grid((1.2, 1.2, 1.2), "LPS", fov_mm=(200.0, 240.0, 210.0))
    anat = tmp_path / "r3" / "R001" / "sub-r001s001" / "ses-1" / "anat"
    stem = anat / "sub-r001s001_ses-1_space-orig"
    write_nifti(
        Path(f"{stem}_desc-brain_T1w.nii.gz"), moved(image, t_affine, POSE, shape, affine), affine
    )
    native_mask = moved(mask, t_affine, POSE, shape, affine, order=0).astype(np.uint8)
    write_nifti(Path(f"{stem}_label-lesion_desc-T1lesion_mask.nii.gz"), native_mask, affine)
    result = run_cli(
        "evaluate",
        "--checkpoint",
        template_run,
        "--data",
        tmp_path / "r3",
        "--subjects",
        "all",
        "--out",
        tmp_path / "eval",
    )
    assert result.returncode == 0, result.stderr
    row = next(csv.DictReader((tmp_path / "eval" / "per_subject.csv").open()))
    assert row["subject"] == "sub-r001s001" and float(row["dice"]) >= 0.9


def test_a_mirror_checkpoint_refuses_an_unregistered_scan_off_the_template(template_run, tmp_path):
    """--register never on a native scan: a template-space checkpoint that feeds the mirror
    would compare voxels with the wrong twins, so the scan is refused in one line."""
    state = torch.load(template_run, map_location="cpu", weights_only=True)
    state["strokeseg"]["data"]["mirror"] = True
    mirror_run = tmp_path / "mirror" / "best.ckpt"
    mirror_run.parent.mkdir()
    torch.save(state, mirror_run)
    image, _ = template_subject(13)
    shape, affine = grid((1.5, 1.5, 1.5), "RAS")
    scan = write_nifti(
        tmp_path / "s.nii.gz", moved(image, template_arrays()[2], POSE, shape, affine), affine
    )
    result, mask_path = predict(mirror_run, scan, tmp_path / "o", "--register", "never")
    assert result.returncode != 0 and not mask_path.exists()
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "--register auto or always" in errors[0]
    assert "Traceback" not in result.stderr
