"""Each quality warning fires on a scan built to trigger it, and not on a normal scan."""

from __future__ import annotations

import numpy as np
import pytest
from data_files import write_nifti

import strokeseg
from strokeseg.data.fingerprint import contrast_from_name, dataset_fingerprint
from strokeseg.data.io import load_volume
from strokeseg.data.preprocessing import Preprocessing, TrainingData, prepare
from strokeseg.inference.engine import Predictor, Segmentation
from strokeseg.inference.options import InferenceOptions
from strokeseg.inference.quality import data_warnings, result_warnings, scan_warnings

SHAPE = (40, 48, 30)


def head(seed: int, brain: float = 100.0, scalp: float = 300.0, shape=SHAPE) -> np.ndarray:
    """An ellipsoid 'brain' inside a brighter 'scalp' shell, with noise, in air whose signal is
    noise (magnitude images: positive)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij"))
    r = np.sqrt((grid**2).sum(axis=0))
    image = np.where(r < 0.7, brain, np.where(r < 0.85, scalp, 0.0))
    image = image + np.where(r < 0.85, rng.normal(0, 5, shape), np.abs(rng.normal(0, 3, shape)))
    return image.astype(np.float32)


def affine(spacing=(1.0, 1.0, 1.0), flip_x: bool = False) -> np.ndarray:
    a = np.diag([*spacing, 1.0])
    if flip_x:
        a[0, 0] = -spacing[0]
        a[0, 3] = spacing[0] * (SHAPE[0] - 1)
    return a


@pytest.fixture(scope="module")
def meta(tmp_path_factory):
    """A checkpoint description whose training data are three normal T1w heads."""
    root = tmp_path_factory.mktemp("train")
    images = [write_nifti(root / f"sub-{i}_T1w.nii.gz", head(i), affine()) for i in range(3)]
    fingerprint = dataset_fingerprint(images, Preprocessing("mri"))
    return TrainingData(Preprocessing("mri"), fingerprint=fingerprint)


def scan(tmp_path, data, aff=None, name="sub-9_T1w.nii.gz", modality="mri"):
    volume = load_volume(write_nifti(tmp_path / name, data, affine() if aff is None else aff))
    return prepare(volume, Preprocessing(modality))


def kinds(warnings: list[str]) -> set[str]:
    return {w.split(":")[0] + ":" + w.split(":")[1].split()[0] for w in warnings}


def test_a_normal_scan_gets_no_warning(tmp_path, meta):
    volume = scan(tmp_path, head(7))
    mask = np.zeros(SHAPE, np.uint8)
    mask[18:22, 20:26, 12:16] = 1
    result = Segmentation(np.where(mask, 0.95, 0.01), mask, mask, volume)
    network = strokeseg.deploy(strokeseg.create_model("unetpp", width=0.125))
    predictor = Predictor([network], {"data": meta}, InferenceOptions(runtime="eager"))
    assert scan_warnings(volume, result, predictor) == []


def test_voxel_size_far_from_training(tmp_path, meta):
    warnings = data_warnings(scan(tmp_path, head(7), affine((1.0, 1.0, 3.0))), meta)
    assert any(w.startswith("voxel size:") for w in warnings)
    assert not any(
        w.startswith("voxel size:") for w in data_warnings(scan(tmp_path, head(7)), meta)
    )


def test_orientation_never_seen_in_training(tmp_path, meta):
    flipped = scan(tmp_path, head(7)[::-1], affine(flip_x=True))
    warnings = data_warnings(flipped, meta)
    assert [w for w in warnings if w.startswith("orientation:")] == [
        "orientation: stored as LAS, training scans were RAS"
    ]
    assert not [w for w in warnings if w.startswith(("voxel size", "field of view"))]


def test_field_of_view_far_from_training(tmp_path, meta):
    big = np.zeros((SHAPE[0] * 2, SHAPE[1] * 2, SHAPE[2]), np.float32)
    big[: SHAPE[0], : SHAPE[1]] = head(7)
    warnings = data_warnings(scan(tmp_path, big), meta)
    assert any(w.startswith("field of view:") for w in warnings)
    assert any(w.startswith("intensity: the head fills 0.07") for w in warnings)  # 1/4 of 0.30
    assert not any(w.startswith("voxel size:") for w in warnings)


def test_intensity_distribution_far_from_training(tmp_path, meta):
    inverted = head(7, brain=300.0, scalp=100.0)  # a different contrast: bright brain
    warnings = data_warnings(scan(tmp_path, inverted), meta)
    assert any(w.startswith("intensity: median") for w in warnings)
    normal = data_warnings(scan(tmp_path, head(8)), meta)
    assert not any(w.startswith("intensity:") for w in normal)


def test_modality_differs_from_the_checkpoint(tmp_path, meta):
    ct = np.where(head(7) > 50, 40.0, -1000.0).astype(np.float32)  # air and tissue in HU
    warnings = data_warnings(scan(tmp_path, ct, name="ct.nii.gz"), meta)
    assert any(w.startswith("modality: the scan looks CT") for w in warnings)
    ct_meta = TrainingData(Preprocessing("ct"))
    mri_for_ct = data_warnings(scan(tmp_path, head(7), modality="ct"), ct_meta)
    assert any(w.startswith("modality: the scan looks not CT") for w in mri_for_ct)
    assert data_warnings(scan(tmp_path, ct, name="ct2.nii.gz", modality="ct"), ct_meta) == []


def test_contrast_in_the_file_name_differs(tmp_path, meta):
    flair = data_warnings(scan(tmp_path, head(7), name="sub-9_FLAIR.nii.gz"), meta)
    assert "modality: file name says flair, training scans were t1w" in flair
    assert data_warnings(scan(tmp_path, head(7), name="sub-9_T1w.nii.gz"), meta) == []
    assert contrast_from_name("sub-1_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz") == "t1w"
    assert contrast_from_name("case_0000.nii.gz") is None


def test_empty_and_implausibly_large_masks(tmp_path, meta):
    volume = scan(tmp_path, head(7))
    empty = np.zeros(SHAPE, np.uint8)
    assert result_warnings(volume, empty, empty.astype(float))[0].startswith("mask: empty")
    large = (head(7) > 50).astype(np.uint8)  # the whole head
    warnings = result_warnings(volume, large, np.where(large, 0.99, 0.0))
    assert warnings == ["mask: 100 % of the head, implausibly large"]
    small = np.zeros(SHAPE, np.uint8)
    small[18:22, 20:26, 12:16] = 1
    assert result_warnings(volume, small, np.where(small, 0.99, 0.0)) == []


def test_a_finding_as_small_as_the_models_false_lesions_is_doubted(tmp_path, meta):
    """The doubt uses the scan's own voxel volume: 96 voxels of 3 mm3 are 0.288 mL."""
    volume = scan(tmp_path, head(7), affine((1.0, 1.0, 3.0)))
    mask = np.zeros(SHAPE, np.uint8)
    mask[18:22, 20:26, 12:16] = 1  # 96 voxels
    prob = np.where(mask, 0.99, 0.0)
    assert result_warnings(volume, mask, prob, false_lesion_ml=0.3) == [
        "volume: 0.29 mL found, no more than the false lesions this model leaves in a typical "
        "validation scan (0.30 mL): it may not be a stroke; check the finding on the images"
    ]
    assert result_warnings(volume, mask, prob, false_lesion_ml=0.28) == []
    assert result_warnings(volume, mask, prob) == []  # no record: no doubt


def test_low_confidence_inside_the_mask(tmp_path, meta):
    volume = scan(tmp_path, head(7))
    mask = np.zeros(SHAPE, np.uint8)
    mask[18:22, 20:26, 12:16] = 1
    low = result_warnings(volume, mask, np.where(mask, 0.6, 0.0))
    assert low == ["confidence: mean probability in the mask 0.60 < 0.75"]
    assert result_warnings(volume, mask, np.where(mask, 0.8, 0.0)) == []
    # with a stored threshold of 0.3 the floor is 0.65
    assert result_warnings(volume, mask, np.where(mask, 0.6, 0.0), threshold=0.3)


def test_old_checkpoints_without_statistics_get_the_other_checks(tmp_path):
    volume = scan(tmp_path, head(7), affine((1.0, 1.0, 3.0)))
    assert data_warnings(volume, TrainingData(Preprocessing("mri"))) == []
