"""DICOM series -> an in-memory NIfTI image (SimpleITK), on an even grid along its stack.

SimpleITK stacks a series' slices at one spacing; a series whose slices lie elsewhere (uneven
gaps, as head CT protocols with thin posterior-fossa slices have, or sheared by a gantry tilt)
is resampled onto an even grid, as dcm2niix does (``docs/data.md``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from strokeseg.errors import StrokesegError

SLICE_TOLERANCE_MM = 0.02
"""How far a DICOM slice's ImagePositionPatient may lie from the even grid before the series
counts as unevenly spaced (or sheared) and is resampled."""


def read_dicom(folder: Path) -> tuple[nib.Nifti1Image, np.ndarray]:
    """One DICOM series -> an in-memory NIfTI image (SimpleITK's LPS turned into NIfTI's RAS).

    SimpleITK stacks the slices at one spacing; a series whose slices lie elsewhere (uneven
    gaps, as head CT protocols with thin posterior-fossa slices have, or sheared by a gantry
    tilt) is resampled onto an even grid along its stack (:func:`_even_stack`)."""
    from strokeseg.extras import require

    sitk = require("SimpleITK", f"{folder}: reading DICOM")
    sitk.ProcessObject_SetGlobalWarningDisplay(False)
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise StrokesegError(f"{folder}: no readable DICOM series")
    if len(series) > 1:
        raise StrokesegError(f"{folder}: {len(series)} DICOM series in one folder; expected one")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series[0])
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()  # applies RescaleSlope/RescaleIntercept (CT -> HU)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown error"
        raise StrokesegError(f"{folder}: unreadable DICOM series ({first})") from None
    if image.GetDimension() != 3:
        raise StrokesegError(f"{folder}: DICOM series is {image.GetDimension()}D, expected 3D")
    data = np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0))  # (z,y,x) -> (x,y,z)
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    affine = np.eye(4)  # LPS until the end
    affine[:3, :3] = direction @ np.diag(image.GetSpacing())
    affine[:3, 3] = image.GetOrigin()
    positions = _slice_positions(sitk, files)
    if positions is not None and len(files) == data.shape[2] > 1:
        data, affine = _even_stack(folder, data, affine, positions)
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine  # LPS -> RAS
    nifti = nib.Nifti1Image(data, affine)
    gram = affine[:3, :3].T @ affine[:3, :3]
    orthogonal = np.allclose(gram, np.diag(np.diag(gram)), atol=1e-6 * gram.max())
    nifti.set_qform(affine if orthogonal else None, code=1 if orthogonal else 0)  # no shear
    nifti.set_sform(affine, code=1)
    return nifti, data.astype(np.float32)


def _slice_positions(sitk, files: list[str]) -> np.ndarray | None:
    """Each file's ImagePositionPatient (LPS mm), or None when a file lacks it."""
    reader = sitk.ImageFileReader()
    positions = []
    for name in files:
        reader.SetFileName(name)
        try:
            reader.ReadImageInformation()
            positions.append([float(v) for v in reader.GetMetaData("0020|0032").split("\\")])
        except (RuntimeError, ValueError):
            return None
    return np.array(positions) if all(len(p) == 3 for p in positions) else None


def _even_stack(
    folder: Path, data: np.ndarray, affine: np.ndarray, positions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``data`` (x, y, slice) on an even grid, and its LPS affine, as dcm2niix does for
    unevenly spaced series: the slices' positions must lie on one line (the slice normal, or
    a sheared stack under a gantry tilt); each pixel is linearly interpolated along that line
    at the smallest gap (shortened so the first and last slices stay on the grid). The
    in-plane axes keep the series' orientation. An even series is returned unchanged."""
    grid = affine[:3, 3] + np.outer(np.arange(len(positions)), affine[:3, 2])
    if np.abs(positions - grid).max() <= SLICE_TOLERANCE_MM:
        return data, affine
    along = positions - positions[0]
    length = float(np.linalg.norm(along[-1]))
    stack = along[-1] / length
    t = along @ stack
    gaps = np.diff(t)
    off_line = np.linalg.norm(along - np.outer(t, stack), axis=1).max()
    if off_line > SLICE_TOLERANCE_MM or gaps.min() <= SLICE_TOLERANCE_MM:
        raise StrokesegError(
            f"{folder}: DICOM slice positions do not form one stack (off a line by "
            f"{off_line:.2f} mm, or two slices at one position); cannot build a volume"
        )
    count = int(np.ceil(length / gaps.min() - 1e-6)) + 1
    step = length / (count - 1)
    new_t = np.arange(count) * step
    k = np.clip(np.searchsorted(t, new_t, side="right") - 1, 0, len(t) - 2)
    w = ((new_t - t[k]) / gaps[k]).astype(np.float32)
    values = data.astype(np.float32)
    resampled = values[:, :, k] * (1 - w) + values[:, :, k + 1] * w
    normal = np.cross(affine[:3, 0], affine[:3, 1])
    normal /= np.linalg.norm(normal)
    plane_gaps = gaps * abs(stack @ normal)
    print(
        f"strokeseg: note: {folder}: DICOM slices unevenly spaced or sheared (gaps "
        f"{plane_gaps.min():.3g}-{plane_gaps.max():.3g} mm along the slice normal); resampled "
        f"to an even grid of {count} slices, {step * abs(stack @ normal):.3g} mm apart "
        "(docs/data.md)",
        file=sys.stderr,
    )
    even = affine.copy()
    even[:3, 2], even[:3, 3] = stack * step, positions[0]
    return resampled, even
