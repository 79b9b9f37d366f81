"""Pairing predicted masks with ground-truth masks by subject id, for ``evaluate --pred --gt``.

Matching rule (``--pred DIR --gt DIR``): every ``.nii``/``.nii.gz`` file below each folder
(hidden files and folders skipped) gets a subject id from its name:

- BIDS names (``sub-X[_ses-Y]_...``) -> ``sub-X[_ses-Y]``, so ATLAS R2.0's
  ``sub-r001s001_ses-1_space-..._label-L_desc-T1lesion_mask`` and a prediction
  ``sub-r001s001_ses-1_space-..._T1w_mask`` share the id ``sub-r001s001_ses-1``;
- other names lose trailing ``_mask``, ``_seg``, ``_label(s)``, ``_lesion``, ``_pred(iction)``,
  ``_stx``, ``_t1w``, ``_deface``, ``_LesionSmooth[_N]`` tags, repeatedly (ATLAS R1.2's
  ``c0001s0004t01_LesionSmooth_stx`` and ``c0001s0004t01_t1w_stx_mask`` -> ``c0001s0004t01``);
- a prediction id ending in an nnU-Net channel tag ``_0000`` matches the ground truth without
  it when no ground truth carries the full id (``case_0000_mask`` -> ``case``).

In ``--gt``, only files that are images by a real image mark are skipped: files under
``images``/``imagesTr``/``imagesTs`` folders, names ending in a BIDS image suffix (``_T1w``,
``_T2w``, ``_FLAIR``, ``_dwi``, ``_CT``) or the nnU-Net channel tag ``_0000``, and ATLAS R1.2
``_t1w[_deface]_stx`` files. Every other file is a mask whatever its name (``sub-01.nii.gz``),
so ``--gt`` may be a plain mask folder or a dataset root; several masks with one id (ATLAS R1.2
``LesionSmooth_1``/``_2``) are unioned.
Every ground-truth subject needs exactly one prediction; predictions without ground truth
are listed on stderr and ignored.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from strokeseg.data.io import is_nifti, load_mask, strip_nifti
from strokeseg.errors import StrokesegError

_BIDS_KEY = re.compile(r"^sub-[A-Za-z0-9]+(_ses-[A-Za-z0-9]+)?(?=_|$)")
_TAG = re.compile(
    r"_(mask|seg|label|labels|lesion|pred|prediction|stx|t1w|deface|LesionSmooth(_\d+)?)$",
    re.IGNORECASE,
)
_CHANNEL = re.compile(r"_0000$")
_ATLAS_R12_IMAGE = re.compile(r"_t1w(_deface)?_stx$", re.IGNORECASE)
_IMAGE_SUFFIX = re.compile(r"_(T1w|T2w|FLAIR|dwi|CT|0000)$", re.IGNORECASE)
_IMAGE_FOLDERS = {"images", "imagesTr", "imagesTs"}


def subject_id(filename: str) -> str:
    """The subject id of a mask file name (see the module docstring for the rule)."""
    stem = strip_nifti(filename)
    bids = _BIDS_KEY.match(stem)
    if bids:
        return bids.group(0)
    while (shorter := _TAG.sub("", stem)) != stem and shorter:
        stem = shorter
    return stem


def _is_image(parts: tuple[str, ...], stem: str) -> bool:
    """An image, not a mask: in an image folder, or named with an image suffix."""
    if _IMAGE_FOLDERS.intersection(parts[:-1]):
        return True
    return bool(_ATLAS_R12_IMAGE.search(stem) or _IMAGE_SUFFIX.search(stem))


def _nifti_files(root: Path, skip_images: bool) -> list[Path]:
    if not root.is_dir():
        raise StrokesegError(f"{root}: not a folder")
    files, images = [], 0
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if any(part.startswith(".") for part in parts) or not path.is_file() or not is_nifti(path):
            continue
        if skip_images and _is_image(parts, strip_nifti(path.name)):
            images += 1
        else:
            files.append(path)
    if not files:
        skipped = f" ({images} image(s) skipped: images*/, _T1w, _0000 ...)" if images else ""
        raise StrokesegError(f"{root}: no NIfTI masks (.nii, .nii.gz) found{skipped}")
    return files


def match_files(pred_dir: Path, gt_dir: Path) -> list[tuple[str, Path, list[Path]]]:
    """(id, prediction, ground-truth files) per ground-truth subject, sorted by id."""
    gts: dict[str, list[Path]] = {}
    for path in _nifti_files(gt_dir, skip_images=True):
        gts.setdefault(subject_id(path.name), []).append(path)
    preds: dict[str, Path] = {}
    unmatched = []
    for path in _nifti_files(pred_dir, skip_images=False):
        sid = subject_id(path.name)
        if sid not in gts and _CHANNEL.search(sid):
            sid = _CHANNEL.sub("", sid)
        if sid in preds:
            raise StrokesegError(f"{path}: same subject id {sid!r} as {preds[sid]}")
        if sid in gts:
            preds[sid] = path
        else:
            unmatched.append(path.name)
    missing = sorted(set(gts) - set(preds))
    if missing:
        shown = ", ".join(missing[:10]) + (", ..." if len(missing) > 10 else "")
        raise StrokesegError(f"{pred_dir}: no prediction for {len(missing)} subject(s): {shown}")
    if unmatched:
        print(
            f"strokeseg evaluate: note: {len(unmatched)} prediction(s) without ground truth "
            f"ignored: {', '.join(unmatched[:10])}",
            file=sys.stderr,
        )
    return [(sid, preds[sid], gts[sid]) for sid in sorted(gts)]


def load_case(sid: str, pred_path: Path, gt_paths: list[Path]):
    """Read one subject's masks (RAS) and check that prediction and ground truth share a grid."""

    gt_volume = load_mask(gt_paths[0])
    gt = gt_volume.data.astype(bool)
    for path in gt_paths[1:]:
        other = load_mask(path, like=gt_volume)
        gt |= other.data.astype(bool)
    pred_volume = load_mask(pred_path)
    if pred_volume.data.shape != gt.shape:
        raise StrokesegError(
            f"{pred_path}: shape {pred_volume.data.shape} differs from ground truth "
            f"{gt_paths[0]} shape {gt.shape}"
        )
    if not np.allclose(pred_volume.affine, gt_volume.affine, rtol=0, atol=1e-3):
        raise StrokesegError(f"{pred_path}: affine differs from ground truth {gt_paths[0]}")
    return sid, pred_volume.data.astype(bool), gt, gt_volume.voxel_mm3, gt_volume.spacing
