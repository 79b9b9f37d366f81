"""Small files for the data tests: NIfTI volumes and DICOM series written on the spot."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

SHAPE = (20, 24, 8)


def affine(spacing=(1.0, 1.0, 1.0), flips=(1, 1, 1), origin=(-10.0, -12.0, -4.0)) -> np.ndarray:
    a = np.diag([*(s * f for s, f in zip(spacing, flips, strict=True)), 1.0])
    a[:3, 3] = origin
    return a


def write_nifti(path: Path, data, aff=None, *, sform: int = 1, qform: int = 1) -> Path:
    """Write ``data`` with ``aff`` into sform/qform (code 0 leaves that form unset)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    aff = affine() if aff is None else aff
    image = nib.Nifti1Image(np.asarray(data), None)
    image.header.set_sform(aff if sform else None, code=sform)
    image.header.set_qform(aff if qform else None, code=qform)
    nib.save(image, path)
    return path


def volume_and_mask(seed: int = 0, shape=SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """A float image with a bright cube and the cube's binary mask."""
    rng = np.random.default_rng(seed)
    image = rng.normal(100, 10, shape).astype(np.float32)
    mask = np.zeros(shape, dtype=np.uint8)
    mask[5:9, 6:11, 2:5] = 1
    image[mask == 1] += 80
    return image, mask


def write_dicom_series(folder: Path, array_zyx: np.ndarray, spacing, origin, direction) -> Path:
    """One CT series, a file per slice, with the geometry tags a reader sorts by."""
    import SimpleITK as sitk

    image = sitk.Image(*array_zyx.shape[::-1], sitk.sitkInt16)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    positions = [image.TransformIndexToPhysicalPoint((0, 0, k)) for k in range(len(array_zyx))]
    return write_dicom_slices(folder, array_zyx, spacing[:2], positions, direction)


def write_dicom_slices(folder: Path, array_zyx: np.ndarray, pixel_spacing, positions, direction):
    """One CT series, slice k of ``array_zyx`` at ImagePositionPatient ``positions[k]`` (LPS
    mm), in the plane of ``direction``'s first two columns (ImageOrientationPatient)."""
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    d = direction
    tags = {
        "0008|0060": "CT",
        "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
        "0020|000e": "1.2.826.0.1.3680043.2.1125.2",
        "0020|0037": "\\".join(str(v) for v in (d[0], d[3], d[6], d[1], d[4], d[7])),
    }
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k, position in enumerate(positions):
        piece = sitk.GetImageFromArray(array_zyx[k].astype(np.int16))
        piece.SetSpacing(tuple(pixel_spacing))
        for tag, value in tags.items():
            piece.SetMetaData(tag, value)
        piece.SetMetaData("0020|0032", "\\".join(str(v) for v in position))
        piece.SetMetaData("0020|0013", str(k + 1))
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(piece)
    return folder
