"""The per-lesion table against hand-computed values, and the label image it matches."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from data_files import write_nifti
from test_territories import segmented

from strokeseg.data.io import load_volume
from strokeseg.data.preprocessing import Preprocessing, TrainingData, prepare
from strokeseg.data.template import MNI152_SHAPE, on_mni_grid
from strokeseg.evaluation.metrics import volume_ml
from strokeseg.reports.lesions import (
    lesion_table,
    lesions_csv,
    midline_x,
    relabel_by_size,
)
from strokeseg.reports.scan import RunReport

SHAPE = (20, 24, 10)
SPACING = (2.0, 1.5, 3.0)
ORIGIN = (-20.0, -18.0, -15.0)  # world mm of voxel (0, 0, 0) in the RAS version


def ras_affine() -> np.ndarray:
    a = np.diag([*SPACING, 1.0])
    a[:3, 3] = ORIGIN
    return a


def lps_affine() -> np.ndarray:
    """The same grid stored with x and y reversed (voxel 0 at the far right/anterior corner)."""
    a = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])
    a[:3, 3] = [
        ORIGIN[0] + SPACING[0] * (SHAPE[0] - 1),
        ORIGIN[1] + SPACING[1] * (SHAPE[1] - 1),
        ORIGIN[2],
    ]
    return a


def two_lesions() -> np.ndarray:
    """A small lesion on the left (low x) and a larger one on the right, in RAS voxel order."""
    mask = np.zeros(SHAPE, dtype=np.uint8)
    mask[2:5, 3:5, 1:3] = 1  # 3 x 2 x 2 = 12 voxels, centre voxel (3, 3.5, 1.5)
    mask[14:18, 10:13, 5:9] = 1  # 4 x 3 x 4 = 48 voxels, centre voxel (15.5, 11, 6.5)
    return mask


# Hand-computed: world = origin + spacing * centre voxel (RAS grid).
SMALL_MM = (-20 + 2 * 3, -18 + 1.5 * 3.5, -15 + 3 * 1.5)  # (-14, -12.75, -10.5)
LARGE_MM = (-20 + 2 * 15.5, -18 + 1.5 * 11, -15 + 3 * 6.5)  # (11, -1.5, 4.5)
VOXEL_ML = 2 * 1.5 * 3 / 1000


@pytest.fixture(params=["RAS", "LPS"])
def scan(request, tmp_path):
    """The two-lesion scan written to disk as RAS or as LPS, with its mask, read back."""
    mask, head = two_lesions(), np.ones(SHAPE, dtype=np.float32)
    if request.param == "RAS":
        affine = ras_affine()
    else:
        affine = lps_affine()
        mask, head = mask[::-1, ::-1], head[::-1, ::-1]
    image = write_nifti(tmp_path / f"{request.param}.nii.gz", head * 100, affine)
    masked = write_nifti(tmp_path / f"{request.param}_mask.nii.gz", mask, affine)
    return load_volume(image), load_volume(masked).data.astype(np.uint8)


def test_centroids_volumes_hemispheres_equal_hand_computed_values(scan):
    volume, mask = scan
    assert nib.aff2axcodes(volume.affine) == ("R", "A", "S")
    labels = relabel_by_size(mask)
    midline = midline_x(prepare(volume, Preprocessing("mri")))
    assert midline == pytest.approx(-20 + 2 * 9.5)  # the centre of a uniform head
    large, small = lesion_table(labels, np.full(SHAPE, 0.8), volume.affine, midline_mm=midline)
    assert (large.id, small.id) == (1, 2)  # sorted by volume
    assert large.centroid_mm == pytest.approx(LARGE_MM)
    assert small.centroid_mm == pytest.approx(SMALL_MM)
    assert (large.voxels, small.voxels) == (48, 12)
    assert large.volume_ml == pytest.approx(48 * VOXEL_ML)
    assert (large.hemisphere, small.hemisphere) == ("right", "left")
    assert (large.axial_slices, small.axial_slices) == ((5, 8), (1, 2))
    assert large.mni_mm is None and small.mni_mm is None


def test_volumes_add_up_and_mean_probability_is_per_lesion(scan):
    volume, mask = scan
    rng = np.random.default_rng(0)
    probability = rng.uniform(0.5, 1.0, SHAPE)
    labels = relabel_by_size(mask)
    table = lesion_table(labels, probability, volume.affine)
    total = volume_ml(mask, volume.voxel_mm3)
    assert sum(les.volume_ml for les in table) == pytest.approx(total)
    for les in table:
        assert les.mean_probability == pytest.approx(probability[labels == les.id].mean())


def test_label_image_ids_match_the_table(scan, tmp_path):
    """Read the written label image with nibabel in its stored order: each id's voxel count
    and centroid (through the stored affine) match the table row with that id."""
    volume, mask = scan
    report = RunReport(tmp_path / "out", {"data": TrainingData(Preprocessing())}, "x.ckpt")
    result = report.add("scan", *segmented(volume, mask, np.full(SHAPE, 0.9)), [])
    stored = nib.load(tmp_path / "out" / "scan_lesions.nii.gz")
    data = np.asarray(stored.dataobj)
    assert data.dtype == np.uint8
    assert np.allclose(stored.affine, volume.source.affine)
    assert sorted(np.unique(data)) == [0, 1, 2]
    for les in result.lesions:
        ijk = np.argwhere(data == les.id)
        assert len(ijk) == les.voxels
        world = nib.affines.apply_affine(stored.affine, ijk.mean(axis=0))
        assert world == pytest.approx(les.centroid_mm)


def test_mni_coordinates_only_on_the_mni_grid():
    from strokeseg.data.template import template_file

    template = nib.load(template_file("t1"))  # the ICBM152 2009a grid itself
    assert template.shape == MNI152_SHAPE
    assert on_mni_grid(template.shape, template.affine)
    shifted = template.affine.copy()
    shifted[0, 3] += 1.0
    assert not on_mni_grid(template.shape, shifted)
    assert not on_mni_grid((197, 233, 188), template.affine)

    mask = np.zeros(MNI152_SHAPE, dtype=np.uint8)
    mask[60:64, 100:104, 80:84] = 1  # centre voxel (61.5, 101.5, 81.5)
    on = lesion_table(relabel_by_size(mask), mask, template.affine, to_template=template.affine)[0]
    assert on.mni_mm == pytest.approx((-98 + 61.5, -134 + 101.5, -72 + 81.5))
    assert on.hemisphere == "left"  # x < 0 in MNI space


def test_stored_lps_on_the_mni_grid_counts_as_mni(tmp_path):
    """The grid test takes the RAS view, so an MNI-grid scan stored flipped still qualifies."""
    from strokeseg.data.template import template_file

    affine = nib.load(template_file("t1")).affine
    flipped = affine @ np.diag([-1.0, 1, 1, 1])
    flipped[0, 3] = affine[0, 3] + (MNI152_SHAPE[0] - 1)
    path = write_nifti(tmp_path / "lps.nii.gz", np.zeros(MNI152_SHAPE, np.uint8), flipped)
    volume = load_volume(path)
    assert nib.aff2axcodes(volume.source.affine)[0] == "L"
    assert on_mni_grid(volume.data.shape, volume.affine)
    assert on_mni_grid(volume.source.shape, volume.source.affine)  # the stored order too


def test_empty_mask_gives_no_rows_and_a_header_only_csv():
    labels = relabel_by_size(np.zeros(SHAPE, np.uint8))
    assert lesion_table(labels, np.zeros(SHAPE), ras_affine()) == []
    assert lesions_csv([("scan", [])]).splitlines() == [lesions_csv([]).strip()]


def test_csv_rows_match_the_table(scan):
    import csv
    import io

    volume, mask = scan
    table = lesion_table(relabel_by_size(mask), np.full(SHAPE, 0.75), volume.affine)
    rows = list(csv.DictReader(io.StringIO(lesions_csv([("s", table)]))))
    assert [int(r["lesion_id"]) for r in rows] == [1, 2]
    assert float(rows[1]["centroid_x_mm"]) == pytest.approx(SMALL_MM[0])
    assert rows[0]["mni_x_mm"] == ""
    assert sum(float(r["volume_ml"]) for r in rows) == pytest.approx(60 * VOXEL_ML)
