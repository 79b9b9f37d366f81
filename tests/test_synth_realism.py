"""SynthATLAS's realism: deformation amplitudes, real lesion masks placed by world coordinates,
the chronic appearance, the ventricle pull, brain-extracted images, and the vendored masks
against the shared originals.

Expectations come from geometry (centroids computed from the masks and affines), from the
amplitudes the docs state, and from the original NIfTI files, not from the generator.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from strokeseg.synth import atlas
from strokeseg.synth.anatomy import displacement, load_template, smooth_field
from strokeseg.synth.deform import _pull, subject_coords
from strokeseg.synth.lesions import Lesions
from strokeseg.synth.real_lesions import _paint, load_library, place_mask

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "soop-lesions"


def test_smooth_field_reaches_its_amplitude():
    for seed in range(5):
        field = smooth_field(np.random.default_rng(seed), (40, 50, 30), 4)
        assert np.abs(field).max() == pytest.approx(1.0)
    shift = displacement(np.random.default_rng(0), (40, 50, 30), 4.5)
    for component in shift:
        assert np.abs(component).max() == pytest.approx(4.5, rel=1e-5)


def test_subject_deformation_is_millimetres_not_tenths():
    template = load_template("sym")
    head = (slice(10, 180), slice(10, 220), slice(5, 180))
    empty = Lesions(np.zeros(template.shape, np.float32), None, (slice(0, 1),) * 3, "L", 0)
    rng = np.random.default_rng(1)
    coords = subject_coords(rng, template, head, empty, atrophy=False)
    grid = np.stack(np.meshgrid(*[np.arange(s.start, s.stop) for s in head], indexing="ij"))
    shift = np.linalg.norm(coords - grid, axis=0)[template.brain[head]]
    assert np.percentile(shift, 50) > 1.5  # the old fields moved the median voxel < 0.6 mm
    assert shift.max() < atlas.REACH_MM


def _affines():
    ras = np.array([[1.0, 0, 0, -98], [0, 1, 0, -134], [0, 0, 1, -72], [0, 0, 0, 1]])
    las = ras.copy()
    las[0, 0], las[0, 3] = -1.0, 98.0
    return {"RAS": ras, "LAS": las}


@pytest.mark.parametrize("storage", ["RAS", "LAS"])
def test_real_mask_lands_at_its_mni_coordinates(storage):
    library = load_library()
    i = int(np.argsort(library.volumes)[len(library.volumes) // 2])  # a median-sized mask
    mask = library.mask(i)
    centroid_mm = library.origin_mm[i] + np.argwhere(mask).mean(axis=0)
    affine = _affines()[storage]
    box, p = place_mask(
        mask, library.origin_mm[i], np.eye(3), centroid_mm, 1.0, affine, (197, 233, 189)
    )
    voxels = np.argwhere(p > 0.5) + [s.start for s in box]
    placed_mm = (affine[:3, :3] @ voxels.T).T.mean(axis=0) + affine[:3, 3]
    np.testing.assert_allclose(placed_mm, centroid_mm, atol=0.5)
    assert abs(int((p > 0.5).sum()) - library.volumes[i]) <= 0.02 * library.volumes[i] + 2


def test_scaled_mask_changes_volume_by_the_cube():
    library = load_library()
    i = int(np.argsort(library.volumes)[int(0.8 * len(library.volumes))])
    mask, origin = library.mask(i), library.origin_mm[i]
    centroid = origin + np.argwhere(mask).mean(axis=0)
    affine = _affines()["RAS"]
    volume = [
        (place_mask(mask, origin, np.eye(3), centroid, s, affine, (197, 233, 189))[1] > 0.5).sum()
        for s in (1.0, 1.2)
    ]
    assert volume[1] / volume[0] == pytest.approx(1.2**3, rel=0.05)


def test_chronic_appearance_core_darker_than_rim():
    zyx = np.indices((41, 41, 41)) - 20
    p = (np.sqrt((zyx**2).sum(axis=0)) <= 12).astype(np.float32)  # a 12 mm ball
    prob, severity = np.zeros_like(p), np.zeros_like(p)
    box = (slice(None),) * 3
    _paint(np.random.default_rng(0), prob, severity, box, p)
    depth = ndi.distance_transform_edt(p > 0.5)
    core, rim = severity[depth >= 8].mean(), severity[(depth > 0) & (depth <= 1)].mean()
    assert core > rim > 0.1  # severity pulls T1 towards CSF: core darker than rim
    assert severity[p == 0].max() == 0  # tissue untouched


def test_ventricle_pull_moves_content_towards_the_lesion():
    shape = (60, 60, 60)
    prob = np.zeros(shape, np.float32)
    prob[40:50, 25:35, 25:35] = 1.0  # lesion centroid (44.5, 29.5, 29.5)
    lesions = Lesions(prob, prob, (slice(40, 50), slice(25, 35), slice(25, 35)), "R", 1)
    ventricles = np.array([[20.0, 30.0, 30.0], [10.0, 30.0, 30.0]], np.float32)
    grid = [g.astype(np.float32) for g in np.ogrid[:60, :60, :60]]
    coords = np.indices(shape).astype(np.float32)
    _pull(coords, grid, lesions, ventricles, 4.0)
    grid = np.indices(shape).astype(np.float32)
    shift = coords[:, 20, 30, 30] - grid[:, 20, 30, 30]
    direction = np.array([44.5 - 20, 29.5 - 30, 29.5 - 30])
    np.testing.assert_allclose(-shift, 4.0 * direction / np.linalg.norm(direction), atol=1e-4)
    # elsewhere a Gaussian neighbourhood of sd 10 mm: at (5, 5, 5), 38.4 mm away, 4 e^-7.37
    far = np.linalg.norm(coords[:, 5, 5, 5] - grid[:, 5, 5, 5])
    assert far == pytest.approx(4.0 * np.exp(-(15**2 + 25**2 + 25**2) / 200.0), rel=1e-3)


def test_brain_extracted_subject_is_zero_off_the_brain():
    stripped = atlas.Options(skull_stripped=1.0)
    image, mask, row, _ = atlas.make_subject(5, 0, options=stripped)
    data = np.asarray(image.dataobj)
    assert row["skull_stripped"] == 1
    template = load_template(row["anatomy"])
    far = ndi.distance_transform_edt(~template.brain) > atlas.REACH_MM
    assert data[far].max() == 0
    assert (data > 0).sum() > 0.8 * template.brain.sum()
    assert np.asarray(mask.dataobj).sum() == row["lesion_volume_mm3"]


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/soop-lesions is absent")
def test_vendored_masks_equal_the_originals():
    library = load_library()
    assert len(library.ids) == len(list(SHARED.glob("bwsrsub-*_lesion.nii.gz")))
    for i in np.random.default_rng(0).choice(len(library.ids), 5, replace=False):
        original = nib.as_closest_canonical(
            nib.load(SHARED / f"bwsrsub-{library.ids[i]}_lesion.nii.gz")
        )
        full = np.asarray(original.dataobj) > 0
        ijk = np.linalg.solve(
            original.affine[:3, :3], library.origin_mm[i] - original.affine[:3, 3]
        )
        lo = np.round(ijk).astype(int)
        hi = lo + library.shape[i]
        np.testing.assert_array_equal(
            full[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]], library.mask(i)
        )
        assert full.sum() == library.volumes[i]
