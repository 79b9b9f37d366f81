"""Scan fingerprints: the geometry and intensity statistics a checkpoint's training data had.

Training stores a summary of its training scans in the checkpoint (``TrainingData.fingerprint``,
``data/preprocessing.py``), so ``predict`` can warn when a scan is far from what the network saw
(nnU-Net keeps a similar "dataset fingerprint" to plan its preprocessing). Intensities are
measured on the normalised image the network sees, over the head the inference crop finds
(:attr:`strokeseg.data.preprocessing.PreparedScan.head`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from strokeseg.data.io import load_volume
from strokeseg.data.preprocessing import PreparedScan, Preprocessing, prepare

MAX_SCANS = 8
"""Training scans read for the fingerprint (evenly spread over the sorted list): bounds the
extra reading time on large datasets."""
NUMERIC = ("spacing_mm", "fov_mm", "head_fraction", "intensity_median")
_CONTRAST = re.compile(r"(?:^|_)(t1w|t2w|flair|pdw|t2starw|dwi|adc|ct)(?=[_.]|$)", re.IGNORECASE)


def contrast_from_name(name: str) -> str | None:
    """The BIDS-like contrast suffix of a file name (``T1w``, ``FLAIR``, ``ct``...), lower case."""
    match = _CONTRAST.search(Path(name).name)
    return match.group(1).lower() if match else None


def scan_fingerprint(scan: PreparedScan) -> dict:
    """One scan's statistics (RAS voxel order; plain floats and strings, JSON-ready)."""
    volume, spacing, head = scan.volume, scan.spacing, scan.head
    values = scan.image[head]
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


def dataset_fingerprint(images: Sequence[Path], preprocessing: Preprocessing) -> dict:
    """The summary over at most :data:`MAX_SCANS` of ``images`` (evenly spread, deterministic)."""
    images = sorted(images)
    picks = np.unique(np.linspace(0, len(images) - 1, min(MAX_SCANS, len(images))).astype(int))
    prints = [scan_fingerprint(prepare(load_volume(images[i]), preprocessing)) for i in picks]
    return summarize(prints, len(images))
