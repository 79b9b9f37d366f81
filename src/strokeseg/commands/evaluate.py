"""``strokeseg evaluate``: score predicted masks against ground-truth masks.

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

In ``--gt``, images are skipped (files under ``images``/``imagesTr``/``imagesTs`` folders,
BIDS files whose suffix is not ``_mask``/``_dseg``, ATLAS R1.2 ``_t1w[_deface]_stx`` files),
so ``--gt`` may be a mask folder or a dataset root; several masks with one id (ATLAS R1.2
``LesionSmooth_1``/``_2``) are unioned.
Every ground-truth subject needs exactly one prediction; predictions without ground truth
are listed on stderr and ignored.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from pathlib import Path

_BIDS_KEY = re.compile(r"^sub-[A-Za-z0-9]+(_ses-[A-Za-z0-9]+)?(?=_|$)")
_TAG = re.compile(
    r"_(mask|seg|label|labels|lesion|pred|prediction|stx|t1w|deface|LesionSmooth(_\d+)?)$",
    re.IGNORECASE,
)
_CHANNEL = re.compile(r"_0000$")
_ATLAS_R12_IMAGE = re.compile(r"_t1w(_deface)?_stx$", re.IGNORECASE)
_BIDS_MASK = re.compile(r"_(mask|dseg)$")
_IMAGE_FOLDERS = {"images", "imagesTr", "imagesTs"}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="score masks: per-subject CSV and summary JSON",
        description="Compare predicted lesion masks with ground-truth masks: per-subject 3D Dice, "
        "IoU, absolute volume difference (mL), lesion-wise F1 (26-connected lesions) and "
        "lesion-count difference, with mean/std and pooled Dice/IoU. Writes "
        "OUT/per_subject.csv and OUT/summary.json. Definitions: docs/metrics.md.",
    )
    masks = p.add_argument_group("mask folders (predictions against ground truth)")
    masks.add_argument("--pred", type=Path, metavar="DIR", help="predicted masks")
    masks.add_argument("--gt", type=Path, metavar="DIR", help="ground-truth masks")
    model = p.add_argument_group("a trained model on a dataset's test split")
    model.add_argument("--checkpoint", type=Path, metavar="CKPT", help="best.ckpt of a run")
    model.add_argument("--data", type=Path, metavar="DIR", help="the dataset folder")
    model.add_argument(
        "--subjects",
        choices=("test", "all"),
        default="test",
        help="the split's test subjects (default) or every labelled subject",
    )
    model.add_argument(
        "--split",
        type=Path,
        metavar="FILE",
        help="split.json (default: the one beside the checkpoint)",
    )
    model.add_argument(
        "--compare",
        type=Path,
        metavar="CKPT",
        help="a second checkpoint: OUT/fig2.png shows both side by side",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("evaluation"),
        metavar="DIR",
        help="output folder (default: ./evaluation)",
    )
    p.add_argument(
        "--empty",
        choices=("one", "nan", "zero"),
        default="one",
        help="Dice/IoU/F1 when both masks are empty: 1.0 (default), NaN = "
        "left out of means, or 0.0",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(run=run)


def subject_id(filename: str) -> str:
    """The subject id of a mask file name (see the module docstring for the rule)."""
    from strokeseg.data.io import strip_nifti

    stem = strip_nifti(filename)
    bids = _BIDS_KEY.match(stem)
    if bids:
        return bids.group(0)
    while (shorter := _TAG.sub("", stem)) != stem and shorter:
        stem = shorter
    return stem


def _is_image(parts: tuple[str, ...], stem: str) -> bool:
    """An image, not a mask: in an image folder, a BIDS file not ending in _mask/_dseg, or an
    ATLAS R1.2 T1w image."""
    if _IMAGE_FOLDERS.intersection(parts[:-1]) or _ATLAS_R12_IMAGE.search(stem):
        return True
    return bool(_BIDS_KEY.match(stem)) and not _BIDS_MASK.search(stem)


def _nifti_files(root: Path, skip_images: bool) -> list[Path]:
    from strokeseg.data.io import is_nifti, strip_nifti
    from strokeseg.errors import StrokesegError

    if not root.is_dir():
        raise StrokesegError(f"{root}: not a folder")
    files = []
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if any(part.startswith(".") for part in parts) or not path.is_file() or not is_nifti(path):
            continue
        if not (skip_images and _is_image(parts, strip_nifti(path.name))):
            files.append(path)
    if not files:
        raise StrokesegError(f"{root}: no NIfTI masks (.nii, .nii.gz) found")
    return files


def match_files(pred_dir: Path, gt_dir: Path) -> list[tuple[str, Path, list[Path]]]:
    """(id, prediction, ground-truth files) per ground-truth subject, sorted by id."""
    from strokeseg.errors import StrokesegError

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


def _load_case(sid: str, pred_path: Path, gt_paths: list[Path]):
    """Read one subject's masks (RAS) and check that prediction and ground truth share a grid."""
    import numpy as np

    from strokeseg.data.io import load_mask
    from strokeseg.errors import StrokesegError

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
    voxel_mm3 = float(abs(np.linalg.det(gt_volume.affine[:3, :3])))
    return sid, pred_volume.data.astype(bool), gt, voxel_mm3


def _summary_table(summary: dict) -> str:
    lines = [
        f"{summary['n_subjects']} subject(s), empty policy {summary['empty_policy']!r}",
        f"{'metric':<40}{'mean':>10}{'std':>10}",
    ]
    for label, key in (
        ("Dice, per-subject 3D (headline)", "dice"),
        ("IoU, per-subject 3D", "iou"),
        ("Dice, per-slice (slices with lesion)", "slice_dice"),
        ("lesion-wise F1", "lesion_f1"),
        ("absolute volume difference (mL)", "abs_volume_difference_ml"),
        ("lesion count difference", "lesion_count_difference"),
    ):
        lines.append(f"{label:<40}{summary[key + '_mean']:>10.4f}{summary[key + '_std']:>10.4f}")
    for label, key in (("Dice, pooled over subjects", "dice"), ("IoU, pooled", "iou")):
        lines.append(f"{label:<40}{summary[key + '_pooled']:>10.4f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from strokeseg.errors import StrokesegError
    from strokeseg.evaluation.report import check_writable, evaluate, write_report

    if args.checkpoint is not None or args.data is not None:
        if args.checkpoint is None or args.data is None or args.pred or args.gt:
            raise StrokesegError("evaluate: give --checkpoint CKPT --data DIR, or --pred --gt")
        from strokeseg.evaluation.model_eval import evaluate_checkpoint

        summary = evaluate_checkpoint(
            args.checkpoint,
            args.data,
            args.out,
            subjects=args.subjects,
            split_file=args.split,
            empty=args.empty,
            compare=args.compare,
            overwrite=args.overwrite,
        )
        print(_summary_table(summary))
        print(f"wrote {args.out}/per_subject.csv, summary.json, overlays/")
        return 0
    if args.pred is None or args.gt is None:
        raise StrokesegError("evaluate: give both --pred DIR and --gt DIR (or --checkpoint --data)")
    check_writable(args.out, overwrite=args.overwrite)
    matched = match_files(args.pred, args.gt)
    cases: Iterator = (_load_case(*item) for item in tqdm(matched, desc="evaluate", disable=None))
    rows, summary = evaluate(cases, empty=args.empty)
    paths = write_report(rows, summary, args.out, overwrite=args.overwrite)
    print(_summary_table(summary))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
