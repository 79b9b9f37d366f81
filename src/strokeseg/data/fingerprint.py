"""Scan fingerprints: the geometry and intensity statistics a checkpoint's training data had.

Training stores a summary of its training scans in the checkpoint (``meta["data"]
["fingerprint"]``), so ``predict`` can warn when a scan is far from what the network saw
(nnU-Net keeps a similar "dataset fingerprint" to plan its preprocessing). Intensities are
measured on the normalised input the network sees, over the head: for MRI the voxels above
10 % of the 99.5th percentile of the nonzero voxels (the percentile
:func:`strokeseg.data.intensity.normalize` clips at, so background noise is left out), for CT
the voxels above -500 HU.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from strokeseg.data.intensity import MRI_PERCENTILES, normalize
from strokeseg.data.io import Volume, load_volume

MAX_SCANS = 8
"""Training scans read for the fingerprint (evenly spread over the sorted list): bounds the
extra reading time on large datasets."""
CT_HEAD_HU = -500.0
MRI_HEAD_FRACTION = 0.1
NUMERIC = ("spacing_mm", "fov_mm", "head_fraction", "intensity_median")
_CONTRAST = re.compile(r"(?:^|_)(t1w|t2w|flair|pdw|t2starw|dwi|adc|ct)(?=[_.]|$)", re.IGNORECASE)


def head_mask(data: np.ndarray, modality: str) -> np.ndarray:
    """Voxels that belong to the head: above 10 % of the robust maximum (MRI), -500 HU (CT)."""
    if modality == "ct":
        return data > CT_HEAD_HU
    values = data[data != 0]
    if not values.size:
        return np.zeros(data.shape, dtype=bool)
    sample = values[:: max(1, values.size // 1_000_000)]  # the percentile of ~1M voxels
    return data > MRI_HEAD_FRACTION * np.percentile(sample, MRI_PERCENTILES[1])


def contrast_from_name(name: str) -> str | None:
    """The BIDS-like contrast suffix of a file name (``T1w``, ``FLAIR``, ``ct``...), lower case."""
    match = _CONTRAST.search(Path(name).name)
    return match.group(1).lower() if match else None


def scan_fingerprint(volume: Volume, modality: str, window: str = "brain") -> dict:
    """One scan's statistics (RAS voxel order; plain floats and strings, JSON-ready)."""
    spacing = np.sqrt((volume.affine[:3, :3] ** 2).sum(axis=0))
    head = head_mask(volume.data, modality)
    values = normalize(volume.data, modality, window)[head]
    return {
        "spacing_mm": [round(float(s), 4) for s in spacing],
        "fov_mm": [round(float(s * n), 2) for s, n in zip(spacing, volume.data.shape, strict=True)],
        "axcodes": "".join(nib.aff2axcodes(volume.source.affine)),
        "head_fraction": round(float(head.mean()), 4),
        "intensity_median": round(float(np.median(values)), 4) if values.size else 0.0,
        "contrast": contrast_from_name(volume.path.name),
    }


def describe_range(low, high, unit: str = "") -> str:
    """A training range in words ("1 x 1 x 3 to 1 x 1 x 5 mm"; one value when all agree)."""
    low, high = np.atleast_1d(low).tolist(), np.atleast_1d(high).tolist()
    text = " x ".join(f"{v:g}" for v in low)
    if low != high:
        text += " to " + " x ".join(f"{v:g}" for v in high)
    return text + unit


def summarize(prints: Sequence[dict], n_scans: int) -> dict:
    """Ranges (min, max per axis for vectors) over scans, with the sets of orientations seen."""
    summary: dict = {"n_scans": n_scans, "n_measured": len(prints)}
    for key in NUMERIC:
        values = np.asarray([p[key] for p in prints], dtype=float)
        summary[key] = {"min": values.min(axis=0).tolist(), "max": values.max(axis=0).tolist()}
    summary["axcodes"] = sorted({p["axcodes"] for p in prints})
    summary["contrasts"] = sorted({p["contrast"] for p in prints if p["contrast"]})
    return summary


def dataset_fingerprint(images: Sequence[Path], modality: str, window: str = "brain") -> dict:
    """The summary over at most :data:`MAX_SCANS` of ``images`` (evenly spread, deterministic)."""
    images = sorted(images)
    picks = np.unique(np.linspace(0, len(images) - 1, min(MAX_SCANS, len(images))).astype(int))
    prints = [scan_fingerprint(load_volume(images[i]), modality, window) for i in picks]
    return summarize(prints, len(images))
