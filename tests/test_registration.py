"""Affine registration to the template: known poses recovered, bad scans refused, and the
resamplers there and back (data/registration.py)."""

from __future__ import annotations

import numpy as np
import pytest
from native_scans import (
    ct_like,
    grid,
    mean_displacement,
    moved,
    pose,
    rotation_degrees,
    template_arrays,
)
from scipy import ndimage

pytest.importorskip("SimpleITK")
pytest.importorskip("nilearn")

from strokeseg.data import registration  # noqa: E402
from strokeseg.data.registration import (  # noqa: E402
    MASK_MM,
    MIN_CORRELATION,
    dilate,
    register_to_template,
    template_grid,
    to_scan,
    to_template,
)

CASES = {
    "brain, LPS, 0.9 x 1.1 x 1.2 mm": (False, "LPS", (0.9, 1.1, 1.2), (6, -4, 9), (5, -8, 12)),
    "head, LAS, 1.2 mm": (True, "LAS", (1.2, 1.2, 1.2), (-8, 5, -3), (-10, 14, -6)),
    "head, PIR, 1 mm, scaled": (True, "PIR", (1.0, 1.0, 1.0), (3, 7, -6), (4, 9, 15)),
}


@pytest.mark.parametrize("case", CASES)
def test_a_template_scan_moved_by_a_known_affine_is_recovered(case):
    head, axcodes, spacing, degrees, shift = CASES[case]
    scale = (1.05, 0.95, 1.0) if "scaled" in case else (1.0, 1.0, 1.0)
    true = pose(degrees, shift, scale)
    t1, brain, t_affine = template_arrays(head)
    shape, affine = grid(spacing, axcodes, fov_mm=(210.0, 250.0, 220.0))
    scan = moved(t1 * 400, t_affine, true, shape, affine)
    found = register_to_template(scan, affine)
    assert found.ok, found.reason
    assert found.quality > 0.9
    assert mean_displacement(found.matrix, true, brain, t_affine) < 1.0
    assert rotation_degrees(found.matrix, true) < 1.0


def test_the_same_scan_registers_to_the_same_matrix():
    t1, _, t_affine = template_arrays()
    shape, affine = grid((1.5, 1.5, 1.5), "RAS")
    scan = moved(t1, t_affine, pose((4, 0, 0)), shape, affine)
    registration._fixed_side.cache_clear()  # the first builds the template's side; the next reuses
    first, second = register_to_template(scan, affine), register_to_template(scan, affine)
    np.testing.assert_array_equal(first.matrix, second.matrix)


def whole_volume_dilation(mask, spacing, mm):
    return ndimage.distance_transform_edt(~mask, sampling=spacing) <= mm


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.9, 1.1, 1.7)])
@pytest.mark.parametrize("mm", [2.0, 5.5])
def test_the_dilation_in_a_box_is_the_whole_volume_one(spacing, mm):
    rng = np.random.default_rng(3)
    mask = ndimage.gaussian_filter(rng.random((40, 34, 28)), 2.0) > 0.53  # blobs
    mask[:3, 10:14, 5:8] = True  # one touching the border
    assert 0 < mask.sum() < mask.size // 4
    np.testing.assert_array_equal(
        dilate(mask, spacing, mm), whole_volume_dilation(mask, spacing, mm)
    )
    dot = np.zeros((30, 30, 30), dtype=bool)
    dot[15, 15, 15] = True
    np.testing.assert_array_equal(dilate(dot, spacing, mm), whole_volume_dilation(dot, spacing, mm))
    assert not dilate(np.zeros((5, 6, 7), dtype=bool), spacing, mm).any()


def test_the_template_brain_dilated_in_a_box_is_the_whole_volume_one():
    brain = template_grid().brain
    spacing = (1.0, 1.0, 1.0)
    np.testing.assert_array_equal(
        dilate(brain, spacing, MASK_MM), whole_volume_dilation(brain, spacing, MASK_MM)
    )


def test_noise_is_not_registered_and_says_why():
    scan = np.random.default_rng(0).random((150, 180, 150)).astype(np.float32)
    found = register_to_template(scan, np.diag([1.2, 1.2, 1.2, 1.0]))
    assert not found.ok
    assert found.quality < MIN_CORRELATION
    assert f"< {MIN_CORRELATION} with the template T1" in found.reason


def test_a_ct_like_head_is_not_registered_as_a_t1():
    hu, t_affine = ct_like()
    shape, affine = grid((0.9, 0.9, 4.5), "LPS")
    found = register_to_template(moved(hu, t_affine, pose((0, 0, 5)), shape, affine), affine)
    assert not found.ok
    assert "correlation" in found.reason


def test_a_constant_volume_is_not_registered():
    found = register_to_template(np.full((60, 70, 60), 30.0, np.float32), np.diag([3, 3, 3, 1.0]))
    assert not found.ok and found.reason


def _centroid_mm(array, affine) -> np.ndarray:
    index = np.asarray(np.nonzero(array > 0.5)).mean(axis=1)
    return affine[:3, :3] @ index + affine[:3, 3]


def test_a_blob_resampled_there_and_back_keeps_its_centroid():
    true = pose((7, -5, 10), (6, -3, 8))
    shape, affine = grid((0.9, 1.1, 1.2), "LPS", fov_mm=(180.0, 200.0, 160.0))
    centre = np.array([20.0, -30.0, 15.0])  # scan world mm
    world = affine[:3, :3] @ np.indices(shape).reshape(3, -1) + affine[:3, 3:]
    blob = (np.linalg.norm(world - centre[:, None], axis=0) < 9).reshape(shape).astype(np.uint8)
    on_template = to_template(blob, affine, true, order=0)
    _, _, t_affine = template_arrays()
    # the template-grid blob sits where the inverse map puts the scan's centre
    expected = np.linalg.inv(true) @ np.append(centre, 1.0)
    assert np.linalg.norm(_centroid_mm(on_template, t_affine) - expected[:3]) < 1.0
    back = to_scan(on_template.astype(np.float32), true, shape, affine, order=1)
    assert np.linalg.norm(_centroid_mm(back, affine) - centre) < 1.0
    assert on_template.dtype == np.uint8 and back.shape == shape
