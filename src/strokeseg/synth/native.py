"""Native-space SynthATLAS subjects in ATLAS R3.0's layout (``synth atlas --space native``).

A template-space subject (image, lesion mask and brain mask on the MNI152 grid) is moved into
a scanner-like pose and grid, as ATLAS R3.0 ships its scans (``space-orig``, brain-extracted):

- pose: a random rigid map template -> scanner world, rotations up to :data:`MAX_DEGREES` about
  each axis and translations up to :data:`MAX_SHIFT_MM` along each;
- grid: axis-aligned in the scanner world, isotropic voxels of 0.8-1.2 mm or (one subject in
  four) 1 x 1 x 1.2 mm, a field of view of 180-220 mm per axis around the moved brain, stored
  in one of :data:`ORIENTATIONS`;
- the image is brain-extracted (``desc-brain``: zero outside the brain mask) and resampled
  linearly; the mask is its float map resampled linearly and kept at 0.5 and above.

Files: ``<SITE>/sub-<id>/ses-1/anat/sub-<id>_ses-1_space-orig_desc-brain_T1w.nii.gz``,
``..._space-orig_label-lesion_desc-T1lesion_mask.nii.gz`` and ``sub-<id>_ses-1_metadata.csv``
(dataset, session, days post stroke, chronicity, site), which ``data.layouts`` reads back as
``atlas_r3.0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import axcodes2ornt
from scipy.spatial.transform import Rotation

from strokeseg.data.io import write_atomic
from strokeseg.data.registration import to_scan
from strokeseg.synth.output import save_nifti

MAX_DEGREES = 15.0
MAX_SHIFT_MM = 20.0
ORIENTATIONS = ("RAS", "LAS", "LPS", "PIR", "LPI", "ASL")
SCANNER_CODE = 1  # NIfTI xform code: scanner-based world coordinates
GENERATED = ("R[0-9][0-9][0-9]",)
"""Site folders a native cohort writes (removed by ``--overwrite``)."""


@dataclass(frozen=True)
class NativeGrid:
    """Where a subject goes: the template -> scanner map and the scan's grid."""

    pose: np.ndarray  # 4x4, template world -> scanner world (RAS mm)
    shape: tuple[int, int, int]
    affine: np.ndarray  # the scan's voxel -> scanner world (RAS mm), in its storage order

    @property
    def spacing(self) -> tuple[float, ...]:
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))


def draw_grid(rng: np.random.Generator, brain_centre_mm: np.ndarray) -> NativeGrid:
    """A random pose and scanner grid (module docstring); ``brain_centre_mm``: the brain's
    centre in template world mm, which the field of view is centred on (+-10 mm)."""
    pose = np.eye(4)
    degrees = rng.uniform(-MAX_DEGREES, MAX_DEGREES, 3)
    pose[:3, :3] = Rotation.from_euler("xyz", degrees, degrees=True).as_matrix()
    pose[:3, 3] = rng.uniform(-MAX_SHIFT_MM, MAX_SHIFT_MM, 3)
    spacing = np.full(3, rng.uniform(0.8, 1.2))
    if rng.random() < 0.25:
        spacing = np.array([1.0, 1.0, 1.2])
    axcodes = ORIENTATIONS[rng.integers(len(ORIENTATIONS))]
    affine = np.diag([0.0, 0.0, 0.0, 1.0])
    ornt = axcodes2ornt(axcodes)
    for axis, (world, sign) in enumerate(ornt):
        affine[int(world), axis] = sign * spacing[int(world)]
    fov = rng.uniform(180.0, 220.0, 3)
    shape = tuple(int(round(fov[int(world)] / spacing[int(world)])) for world, _ in ornt)
    centre = (pose @ np.append(brain_centre_mm, 1.0))[:3] + rng.uniform(-10, 10, 3)
    affine[:3, 3] = centre - affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    return NativeGrid(pose, shape, affine)


def move(
    image: np.ndarray, mask: np.ndarray, brain: np.ndarray, grid: NativeGrid
) -> tuple[np.ndarray, np.ndarray]:
    """(brain-extracted image, lesion mask uint8) of a template-grid subject on ``grid``."""
    extracted = np.where(brain > 0, image, 0).astype(np.float32)
    moved = to_scan(extracted, grid.pose, grid.shape, grid.affine, order=1)
    lesion = to_scan(mask.astype(np.float32), grid.pose, grid.shape, grid.affine, order=1)
    return moved, (lesion >= 0.5).astype(np.uint8)


def native_paths(out: Path, sid: str, site: str) -> tuple[Path, Path, Path]:
    """(image, mask, metadata table) of one subject in ATLAS R3.0's layout."""
    anat = out / site / sid / "ses-1" / "anat"
    stem = f"{sid}_ses-1_space-orig"
    return (
        anat / f"{stem}_desc-brain_T1w.nii.gz",
        anat / f"{stem}_label-lesion_desc-T1lesion_mask.nii.gz",
        anat / f"{sid}_ses-1_metadata.csv",
    )


def _nifti(data: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=SCANNER_CODE)
    image.set_sform(affine, code=SCANNER_CODE)
    image.header.set_xyzt_units("mm", "sec")
    return image


def write_native(
    out: Path,
    sid: str,
    site: str,
    subject: tuple[nib.Nifti1Image, nib.Nifti1Image, np.ndarray],
    rng: np.random.Generator,
) -> dict:
    """Write one template-space ``subject`` (image, mask, brain mask) in a native pose drawn
    from ``rng``; returns what was drawn (for participants.tsv)."""
    image, mask, brain = subject
    template_affine = image.affine
    centre = template_affine[:3, :3] @ np.argwhere(brain).mean(axis=0) + template_affine[:3, 3]
    grid = draw_grid(rng, centre)
    data, lesion = move(np.asanyarray(image.dataobj), np.asanyarray(mask.dataobj), brain, grid)
    data = np.clip(np.round(data), 0, np.iinfo(np.int16).max).astype(np.int16)
    image_path, mask_path, table = native_paths(out, sid, site)
    save_nifti(_nifti(data, grid.affine), image_path)
    save_nifti(_nifti(lesion, grid.affine), mask_path)
    days = int(rng.integers(180, 3000))
    write_atomic(
        table,
        "dataset,session,days_post_stroke,chronicity,site\n"
        f"SynthATLAS,ses-1,{days},chronic,{site}\n",
        overwrite=True,
    )
    return {
        "axcodes": "".join(nib.aff2axcodes(grid.affine)),
        "voxel_mm": "x".join(f"{s:.3g}" for s in grid.spacing),
        "native_lesion_volume_mm3": float(lesion.sum()) * float(np.prod(grid.spacing)),
    }
