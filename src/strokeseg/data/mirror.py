"""The left-right mirror of a scan as extra input channels (``data.mirror``; not in the paper).

A stroke lesion is (almost always) in one hemisphere; tissue that merely looks like lesion,
such as deep grey matter beside white matter in T1, has a twin across the midline. The
reflection about the mid-sagittal plane x = 0 mm (RAS world) puts each voxel's contralateral
twin beside it, so a network can compare the two. It needs images registered to a symmetric
template, where x = 0 is the midline: ATLAS R2.0 (MNI152NLin2009aSym), ATLAS R1.2 (MNI152)
and the SynthATLAS cohorts are; scans in their native space are not.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from scipy import ndimage

from strokeseg.data.io import Volume, read_grid
from strokeseg.errors import StrokesegError

REFLECT_X = np.diag([-1.0, 1.0, 1.0, 1.0])


def _reflection_in_voxels(affine: np.ndarray) -> np.ndarray:
    """The reflection about x = 0 mm as a voxel-to-voxel map of the grid with ``affine``."""
    return np.linalg.inv(affine) @ REFLECT_X @ affine


def check_midline(path: Path, affine: np.ndarray, shape: tuple[int, ...], hint: str = "") -> None:
    """Refuse a grid whose centre, mirrored about x = 0 mm, falls outside it: a scan that is
    not registered to a symmetric template. The test does not depend on the voxel order."""
    voxels = _reflection_in_voxels(affine)
    size = np.asarray(shape[:3])
    centre = voxels[:3, :3] @ ((size - 1) / 2) + voxels[:3, 3]
    if np.any(centre < 0) or np.any(centre > size - 1):
        raise StrokesegError(
            f"{path}: data.mirror: the grid's centre mirrored about x = 0 mm falls "
            "outside the grid; the mirror needs images registered to a symmetric template "
            f"(x = 0 the midline){hint}"
        )


def check_scans(paths: Iterable[Path]) -> None:
    """:func:`check_midline` for every scan, from the NIfTI headers alone where it can; the
    hint names the setting that turns the mirror off."""
    for path in paths:
        affine, shape = read_grid(path)
        check_midline(path, affine, shape, hint="; pass --set data.mirror=false")


def mirror_lr(array: np.ndarray, volume: Volume) -> np.ndarray:
    """``array`` (RAS, on ``volume``'s grid) reflected about the world plane x = 0 mm, linearly
    interpolated, 0 where the reflection leaves the grid; exact for a grid symmetric about it."""
    check_midline(volume.path, volume.affine, array.shape)
    # output voxel i shows the input at world R A i, input voxel A^-1 R A i
    voxels = _reflection_in_voxels(volume.affine)
    return ndimage.affine_transform(
        np.asarray(array, dtype=np.float32), voxels[:3, :3], voxels[:3, 3], order=1, cval=0.0
    )


def with_mirror(array: np.ndarray, volume: Volume, mirror: bool) -> np.ndarray:
    """The network's input volume(s): ``array`` (X, Y, Z), or with ``mirror`` the stack
    (2, X, Y, Z) of ``array`` and its reflection (:func:`mirror_lr`)."""
    return np.stack([array, mirror_lr(array, volume)]) if mirror else array
