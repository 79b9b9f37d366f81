"""The ICBM152 2009a template files that nilearn's wheel ships (SynthATLAS's anatomy, the
brain mask the inference crop uses for scans on the MNI152 grid, the registration target)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from nibabel.orientations import axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

from strokeseg.errors import StrokesegError
from strokeseg.extras import locate

TEMPLATE_FILE = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"
BRAIN_THRESHOLD = 0.2
"""nilearn's own brain-mask rule: template T1 (rescaled to [0, 1]) above this value."""
MNI152_SHAPE = (197, 233, 189)
MNI152_AFFINE = np.array(
    [[1.0, 0, 0, -98.0], [0, 1.0, 0, -134.0], [0, 0, 1.0, -72.0], [0, 0, 0, 1.0]]
)
"""ATLAS R2.0's grid: MNI152NLin2009aSym at 1 mm (the ICBM152 2009a template's own grid)."""


def template_file(name: str) -> Path:
    """Path of a template file inside the installed nilearn package (found without importing
    nilearn, whose import costs seconds)."""
    spec = locate("nilearn", "the ICBM152 template (synthetic cohorts, registration)")
    path = Path(spec.origin).parent / "datasets" / "data" / TEMPLATE_FILE.format(name)
    if not path.is_file():
        raise StrokesegError(f"{path}: missing from the nilearn installation")
    return path


def on_mni_grid(shape: tuple[int, ...], affine: np.ndarray) -> bool:
    """Whether a grid lies on the MNI152 1 mm grid of ATLAS R2.0 (within 1e-3 mm), in any
    voxel order: the grid is put in RAS order first (nibabel's closest canonical)."""
    affine = np.asarray(affine, dtype=float)
    to_ras = ornt_transform(io_orientation(affine), axcodes2ornt("RAS"))
    ras_shape = [0, 0, 0]
    for axis, (target, _) in enumerate(to_ras):
        ras_shape[int(target)] = int(shape[axis])
    ras_affine = affine @ inv_ornt_aff(to_ras, tuple(shape[:3]))
    return tuple(ras_shape) == MNI152_SHAPE and np.allclose(ras_affine, MNI152_AFFINE, atol=1e-3)


def grid_space(grids: Iterable[tuple[np.ndarray, tuple[int, ...]]]) -> str:
    """``"template"`` when every (affine, shape) lies on the MNI152 grid, else ``"native"``:
    what a checkpoint records of its training scans (``Preprocessing.space``)."""
    return "template" if all(on_mni_grid(shape, a) for a, shape in grids) else "native"
