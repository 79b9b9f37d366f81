"""The crop rule (data/crop.py): what it keeps, its boxes, and the exact whole-volume path."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from strokeseg.data import crop
from strokeseg.data.io import Volume
from strokeseg.data.preprocessing import Preprocessing, prepare
from strokeseg.data.slices import to_slices
from strokeseg.data.template import MNI152_AFFINE


def crop_plan(image: np.ndarray, affine: np.ndarray, modality: str) -> crop.SlicePlan:
    """The crop's plan of a RAS ``image`` (data/preprocessing.py)."""
    return prepare(Volume(Path("scan.nii.gz"), image, affine, None), Preprocessing(modality)).plan


def covered(plan: crop.SlicePlan) -> np.ndarray:
    """Voxels inside some box of ``plan`` (rasterised here, independently of extract/paste)."""
    out = np.zeros(plan.shape, dtype=bool)
    for z, y0, y1, x0, x1 in plan.boxes:
        out[max(x0, 0) : max(x1, 0), max(y0, 0) : max(y1, 0), z] = True
    return out


def check_lattice(plan: crop.SlicePlan) -> None:
    """Boxes are multiples of 16 and start on the whole-volume path's 16-pixel lattice."""
    nx, ny, _ = plan.shape
    b = plan.boxes
    assert len(b)
    assert np.all((b[:, 2] - b[:, 1]) % 16 == 0) and np.all((b[:, 4] - b[:, 3]) % 16 == 0)
    assert np.all((b[:, 1] + crop.lattice_offset(ny)) % 16 == 0)
    assert np.all((b[:, 3] + crop.lattice_offset(nx)) % 16 == 0)


def test_aligned_span_by_hand():
    # ATLAS Y = 233 is padded to 240 with 3 voxels in front: the lattice is at y = -3, 13, 29 ...
    assert crop.lattice_offset(233) == 3
    assert crop.aligned_span(20, 100, 233) == (13, 109)
    assert crop.aligned_span(13, 28, 233) == (13, 29)
    assert crop.aligned_span(-5, 240, 233) == (-19, 253)


@pytest.mark.parametrize("shape", [(197, 233, 5), (30, 17, 3), (32, 48, 2)])
def test_whole_plan_is_the_padded_slicing(shape):
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    plan = crop.whole_plan(shape)
    assert len(plan.boxes) == shape[2]
    rows = np.arange(shape[2])
    got = plan.extract(image, rows)[:, 0]
    np.testing.assert_array_equal(got, to_slices(image, pad=True))
    back = np.zeros(shape, dtype=np.float32)
    plan.paste(back, rows, got)
    np.testing.assert_array_equal(back, image)


def test_extract_reads_outside_as_zero_and_context_slices():
    image = np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3) + 1
    plan = crop.SlicePlan((4, 5, 3), np.array([[0, -1, 15, 2, 18]]))
    x = plan.extract(image, np.array([0]), context=1)
    assert x.shape == (1, 3, 16, 16)
    assert not x[0, 0].any()  # slice -1 does not exist
    np.testing.assert_array_equal(x[0, 1, 1:6, 0:2], image[2:4, 0:5, 0].T)
    np.testing.assert_array_equal(x[0, 2, 1:6, 0:2], image[2:4, 0:5, 1].T)
    assert x[0, 1].sum() == image[2:4, :, 0].sum()


@functools.lru_cache(maxsize=1)
def mni_scan() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A T1-like image on the template grid, a lesion along the brain's edge and up to 4 mm out
    (the margin)."""
    brain = crop.template_brain()
    if brain is None:
        pytest.skip("nilearn (the ICBM152 template) is not installed")
    affine = MNI152_AFFINE
    edge = brain & ~ndi.binary_erosion(brain)
    lesion = np.zeros_like(brain)
    lesion[:, :100, :] = edge[:, :100, :]  # the whole posterior edge of the brain
    outside = ndi.distance_transform_cdt(~brain, metric="chessboard") <= crop.MARGIN_MM
    lesion[:, 150:, :] |= outside[:, 150:, :] & ~brain[:, 150:, :]  # and a rim outside it
    image = np.where(brain, 0.7, 0.05).astype(np.float32)
    return image, affine, lesion


def test_mni_crop_keeps_every_lesion_voxel_at_the_brain_edge():
    image, affine, lesion = mni_scan()
    plan = crop_plan(image, affine, "mri")
    assert lesion.any() and covered(plan)[lesion].all()
    check_lattice(plan)
    assert plan.work < 0.45 * crop.whole_plan(image.shape).work  # most of the air is skipped
    brain_slices = np.flatnonzero(crop.template_brain().any(axis=(0, 1)))
    assert set(brain_slices) <= set(plan.boxes[:, 0])


def test_mni_grid_is_recognised_by_shape_and_affine_only():
    image, affine, _ = mni_scan()

    def region_is_brain(image, affine):
        scan = prepare(Volume(Path("scan.nii.gz"), image, affine, None), Preprocessing())
        return scan.region is crop.template_brain()

    assert region_is_brain(image, affine)
    shifted = affine.copy()
    shifted[0, 3] += 1.0
    assert not region_is_brain(image, shifted)
    assert not region_is_brain(image[:, :, :188], affine)


def head_scan(modality: str, spacing=(0.8, 0.8, 2.0)):
    """An ellipsoid head in noise with a lesion on its surface and a bright speck far away."""
    rng = np.random.default_rng(1)
    shape = (120, 140, 40)
    grid = np.indices(shape).astype(np.float32)
    centre = np.array([55, 75, 20], dtype=np.float32)[:, None, None, None]
    radii = np.array([40, 50, 15], dtype=np.float32)[:, None, None, None]
    head = (((grid - centre) / radii) ** 2).sum(axis=0) <= 1
    surface = head & ~ndi.binary_erosion(head)
    lesion = surface & (grid[0] > 80)  # the right edge of the head
    if modality == "mri":
        image = np.where(head, 600.0, 0.0) + rng.random(shape) * 20
        image[115:118, 2:5, 3:5] = 800.0  # bright, but not the head
    else:
        image = np.where(head, 40.0, -1000.0) + rng.normal(0, 5, shape)
        image[115:118, 2:5, 3:5] = 300.0
    affine = np.diag([*spacing, 1.0])
    return image.astype(np.float32), affine, lesion, head


@pytest.mark.parametrize("modality", ["mri", "ct"])
def test_head_crop_keeps_the_head_and_skips_specks(modality):
    image, affine, lesion, head = head_scan(modality)
    plan = crop_plan(image, affine, modality)
    inside = covered(plan)
    assert inside[lesion].all() and inside[head].all()
    assert not inside[115:118, 2:5, 3:5].all()  # the speck is not the largest component
    check_lattice(plan)
    # margin: 4 mm is 5 voxels in-plane at 0.8 mm and 2 slices at 2 mm
    zs = np.flatnonzero(head.any(axis=(0, 1)))
    assert plan.boxes[:, 0].min() == max(zs[0] - 2, 0) and plan.boxes[:, 0].max() == zs[-1] + 2
    xs = np.flatnonzero(head.any(axis=(1, 2)))
    assert plan.boxes[:, 3].min() <= xs[0] - 5 and plan.boxes[:, 4].max() >= xs[-1] + 6


@pytest.mark.parametrize(("modality", "value"), [("mri", 0.0), ("ct", -1000.0), ("mri", 5.0)])
def test_blank_scan_has_nothing_to_segment(modality, value):
    image = np.full((40, 50, 6), value, dtype=np.float32)
    plan = crop_plan(image, np.eye(4), modality)
    assert plan.boxes.shape == (0, 5) and plan.work == 0
    assert list(plan.groups(4)) == []


def test_fit_grid_grows_boxes_to_the_training_grid_centred():
    plan = crop.SlicePlan((50, 60, 2), np.array([[0, 10, 26, 20, 52], [1, -3, 237, 0, 16]]))
    fitted = crop.fit_grid(plan, (64, 48))
    np.testing.assert_array_equal(fitted.boxes, [[0, -6, 58, 20, 68], [1, -3, 237, -16, 32]])
    odd = crop.fit_grid(plan, (20, 40))  # a grid off the 16-lattice is centred exactly
    np.testing.assert_array_equal(odd.boxes, [[0, 8, 28, 16, 56], [1, -3, 237, -12, 28]])


def test_groups_batch_equal_sizes_in_slice_order():
    boxes = np.array([[z, 0, 16 * (1 + z % 2), 0, 32] for z in range(7)])
    groups = [list(g) for g in crop.SlicePlan((32, 32, 7), boxes).groups(2)]
    assert groups == [[0, 2], [4, 6], [1, 3], [5]]
