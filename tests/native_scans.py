"""Scans in a native pose made from the template: known affine maps, voxel sizes and storage
orientations, resampled by nibabel (a second implementation beside strokeseg's resamplers)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
from nibabel.orientations import axcodes2ornt
from nibabel.processing import resample_from_to
from scipy import ndimage
from scipy.spatial.transform import Rotation


def pose(degrees=(0.0, 0.0, 0.0), shift_mm=(0.0, 0.0, 0.0), scale=(1.0, 1.0, 1.0)) -> np.ndarray:
    """A 4x4 map template world -> scan world (RAS mm): scale, then rotate, then shift."""
    matrix = np.eye(4)
    rotation = Rotation.from_euler("xyz", degrees, degrees=True).as_matrix()
    matrix[:3, :3] = rotation @ np.diag(scale)
    matrix[:3, 3] = shift_mm
    return matrix


def grid(spacing=(1.0, 1.0, 1.0), axcodes="RAS", fov_mm=(200.0, 240.0, 200.0), centre=(0, -18, 8)):
    """(shape, affine) of a grid stored in ``axcodes`` order, centred on ``centre`` (world mm).
    ``spacing`` and ``fov_mm`` are per array axis."""
    shape = tuple(int(round(f / s)) for f, s in zip(fov_mm, spacing, strict=True))
    affine = np.diag([0.0, 0.0, 0.0, 1.0])
    for axis, (world, sign) in enumerate(axcodes2ornt(axcodes)):
        affine[int(world), axis] = sign * spacing[axis]
    affine[:3, 3] = np.asarray(centre) - affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    return shape, affine


def oblique(affine: np.ndarray, degrees=(8.0, -5.0, 4.0)) -> np.ndarray:
    """``affine`` rotated about the world origin: an oblique grid."""
    return pose(degrees) @ affine


def template_arrays(head: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T1 in [0, 1], brain mask, affine) of the template; ``head`` adds a CSF gap, a dark
    skull and a bright scalp around the brain."""
    from strokeseg.data.registration import template_grid

    template = template_grid()
    t1 = template.t1.copy()
    if head:
        outside = ndimage.distance_transform_edt(~template.brain)
        t1[(outside > 3) & (outside <= 8)] = 0.05  # skull
        t1[(outside > 8) & (outside <= 13)] = 0.9  # scalp fat
    return t1, template.brain, template.affine


def moved(array, template_affine, matrix, shape, affine, order: int = 1) -> np.ndarray:
    """``array`` on the template grid, moved by ``matrix`` (template world -> scan world) and
    sampled on the scan grid (``shape``, ``affine``) by nibabel."""
    image = nib.Nifti1Image(np.asarray(array, np.float32), matrix @ template_affine)
    return resample_from_to(image, (shape, affine), order=order, cval=0.0).get_fdata(
        dtype=np.float32
    )


def ct_like() -> tuple[np.ndarray, np.ndarray]:
    """A head in constant Hounsfield-like values (CSF 5, grey 38, white 25, skull 1000, air
    -1000) on the template grid."""
    template = template_arrays()
    t1, brain = template[0], template[1]
    hu = np.full(t1.shape, -1000.0, np.float32)
    outside = ndimage.distance_transform_edt(~brain)
    hu[(outside > 0) & (outside <= 3)] = 5.0
    hu[(outside > 3) & (outside <= 9)] = 1000.0
    hu[(outside > 9) & (outside <= 13)] = 30.0
    hu[brain] = np.select([t1[brain] < 0.45, t1[brain] < 0.75], [5.0, 38.0], 25.0)
    return hu, template[2]


def mean_displacement(found: np.ndarray, true: np.ndarray, brain, affine) -> float:
    """Mean distance (mm) between two template -> scan maps over the template brain."""
    points = nib.affines.apply_affine(affine, np.argwhere(brain)[::20])
    diff = nib.affines.apply_affine(found, points) - nib.affines.apply_affine(true, points)
    return float(np.linalg.norm(diff, axis=1).mean())


def rotation_degrees(found: np.ndarray, true: np.ndarray) -> float:
    """Angle (degrees) of the rotation between the rotation parts of two affine maps."""
    rotations = []
    for m in (found, true):
        u, _, vt = np.linalg.svd(m[:3, :3])
        rotations.append(Rotation.from_matrix(u @ vt))
    return float(np.degrees((rotations[0].inv() * rotations[1]).magnitude()))
