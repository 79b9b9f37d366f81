"""Intensity normalisation to [0, 1]: MRI by robust percentiles, CT by a Hounsfield window."""

from __future__ import annotations

import numpy as np

from strokeseg.errors import StrokesegError

CT_WINDOWS = {"brain": (80.0, 40.0), "stroke": (40.0, 40.0)}  # (width, level) in HU
MRI_PERCENTILES = (0.5, 99.5)


def normalize(array: np.ndarray, modality: str, window: str = "brain") -> np.ndarray:
    """Map a volume to float32 [0, 1].

    MRI: clip to the 0.5-99.5 percentiles of the nonzero voxels (so the zero background of a
    skull-stripped or defaced scan does not drag the low percentile to 0), then rescale; a volume
    with no contrast maps to zeros. CT: clip to the Hounsfield window (brain W80/L40, stroke
    W40/L40) and rescale; ``array`` must already be in HU (load_volume applies scl_slope/inter).
    """
    array = np.asarray(array, dtype=np.float32)
    if modality == "mri":
        values = array[array != 0]
        if values.size == 0:
            return np.zeros_like(array)
        low, high = np.percentile(values, MRI_PERCENTILES)
    elif modality == "ct":
        if window not in CT_WINDOWS:
            raise StrokesegError(f"CT window {window!r}: expected one of {', '.join(CT_WINDOWS)}")
        width, level = CT_WINDOWS[window]
        low, high = level - width / 2, level + width / 2
    else:
        raise StrokesegError(f"modality {modality!r}: expected 'mri' or 'ct'")
    if high <= low:
        return np.zeros_like(array)
    return np.clip((array - np.float32(low)) / np.float32(high - low), 0.0, 1.0)
