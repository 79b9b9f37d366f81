"""Template-space checkpoints on native scans: registration to the template and back.

A checkpoint records the space of its training scans (``Preprocessing.space``,
``data/preprocessing.py``: "template" when every one lay on the MNI152 grid, else "native";
"unknown" for some older checkpoints). ``--register auto`` (the default) registers a scan off the
MNI152 grid for a template-space checkpoint, ``always`` every scan, ``never`` none. A registered
scan is resampled linearly to the template grid (what the network sees), segmented there, and its
probability resampled linearly back to the scan's grid, where the threshold and the minimum lesion
volume apply; the mask keeps the scan's own geometry. A scan that cannot be registered is refused
with one line (no mask is written; a folder's other scans go on).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import nibabel as nib
import numpy as np

from strokeseg.data.io import Volume
from strokeseg.data.preprocessing import PreparedScan
from strokeseg.data.registration import (
    Registration,
    register_to_template,
    template_grid,
    to_scan,
    to_template,
)
from strokeseg.errors import StrokesegError


@dataclass(frozen=True)
class TemplateScan:
    """A scan resampled to the template grid, and the registration that put it there."""

    volume: Volume
    registration: Registration


def needs_registration(scan: PreparedScan, mode: str) -> bool:
    """Whether ``mode`` (``--register``) registers ``scan`` for its checkpoint."""
    if mode != "auto":
        return mode == "always"
    return scan.preprocessing.space == "template" and not scan.on_template


def check_mirror_grid(scan: PreparedScan) -> None:
    """Refuse an unregistered scan off the template grid for a checkpoint that feeds the
    left-right mirror and was trained on that grid: its midline would not be x = 0 mm, and the
    mirror would compare each voxel with the wrong twin."""
    preprocessing = scan.preprocessing
    mirror_on_template = preprocessing.mirror and preprocessing.space == "template"
    if mirror_on_template and not scan.on_template:
        raise StrokesegError(
            f"{scan.volume.path}: not on the MNI152 template grid, and this checkpoint compares "
            "each voxel with its mirror across x = 0 mm there; segment it through the "
            "registration (--register auto or always)"
        )


def register_scan(volume: Volume) -> TemplateScan:
    """``volume`` registered and resampled to the template grid; a failed registration is a
    :class:`StrokesegError` naming the file and the reason."""
    registration = register_to_template(volume.data, volume.affine)
    if not registration.ok:
        raise StrokesegError(
            f"{volume.path}: cannot register the scan to the template ({registration.reason}); "
            "no mask written (--register never segments it unregistered)"
        )
    grid = template_grid()
    data = to_template(volume.data, volume.affine, registration, order=1)
    source = nib.Nifti1Image(data, grid.affine)
    print(
        f"strokeseg: note: {volume.path.name}: registered to the template "
        f"(correlation {registration.quality:.2f})",
        file=sys.stderr,
    )
    return TemplateScan(Volume(volume.path, data, grid.affine, source), registration)


def template_map(scan: PreparedScan, template: TemplateScan | None) -> np.ndarray | None:
    """Template (MNI) mm of ``scan``'s RAS voxel indices, as a 4x4, when known: its own
    affine on the template grid, through its registration when it was registered, else None
    (vascular territories and MNI coordinates need it)."""
    if template is not None:
        return np.linalg.inv(template.registration.matrix) @ scan.volume.affine
    return scan.volume.affine if scan.on_template else None


def back_to_scan(probability: np.ndarray, scan: TemplateScan, volume: Volume) -> np.ndarray:
    """A template-grid probability on ``volume``'s grid (RAS), linearly interpolated."""
    return to_scan(probability, scan.registration, volume.data.shape, volume.affine, order=1)
