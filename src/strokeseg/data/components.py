"""Lesion components: connected pieces of a mask, their sizes, and size filters.

One place for what the metrics (lesion-wise F1), post-processing (minimum lesion volume),
the crop (the head as the largest piece) and SynthATLAS (no specks) all need. Connectivity
26 is full (26-neighbourhood in 3D, 8 in 2D; ISLES'22 counts lesions so), 6 is faces only
(6 in 3D, 4 in 2D; SciPy's default, the ATLAS R2.0 final scoring's).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

CONNECTIVITIES: tuple[int, ...] = (6, 26)


def connectivity_structure(ndim: int, connectivity: int = 26) -> np.ndarray:
    """Structuring element of ``connectivity`` (26: full, 6: faces only) in ``ndim`` dims."""
    if connectivity not in CONNECTIVITIES:
        raise ValueError(f"connectivity must be one of {CONNECTIVITIES}, got {connectivity!r}")
    rank = ndim if connectivity == 26 else 1
    return ndimage.generate_binary_structure(ndim, rank)


def label_lesions(mask: np.ndarray, connectivity: int = 26) -> tuple[np.ndarray, int]:
    """Connected components of ``mask`` (full connectivity by default); (labels, count)."""
    mask = np.asarray(mask, dtype=bool)
    labels, count = ndimage.label(mask, structure=connectivity_structure(mask.ndim, connectivity))
    return labels, int(count)


def component_sizes(labels: np.ndarray, count: int) -> np.ndarray:
    """Voxels of each label 0..count (index 0, the background, is counted too)."""
    return np.bincount(labels.ravel(), minlength=count + 1)


def keep_large(
    mask: np.ndarray, minimum: float, voxel: float = 1.0, connectivity: int = 26
) -> np.ndarray:
    """Bool ``mask`` without the components whose size (voxels x ``voxel``, e.g. its volume
    in mm3) is below ``minimum``."""
    labels, count = label_lesions(mask, connectivity)
    keep = component_sizes(labels, count) * voxel >= minimum
    keep[0] = False
    return keep[labels]


def largest(mask: np.ndarray, connectivity: int = 26) -> np.ndarray:
    """Bool mask of the largest component of ``mask`` (empty if it has none)."""
    labels, count = label_lesions(mask, connectivity)
    if count <= 1:
        return labels > 0
    sizes = component_sizes(labels, count)
    sizes[0] = 0
    return labels == sizes.argmax()
