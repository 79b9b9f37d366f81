"""Find subjects in dataset folders as they ship: ATLAS R1.2/R2.0/R3.0, nnU-Net, folders, DICOM.

Each reader returns the subjects it recognises plus layout-level problems (an nnU-Net image
without its label, a mask without an image), which ``strokeseg check`` reports. Hidden files and
folders (names starting with ``.``, which includes macOS ``._*`` resource forks) are never read.
The rules are documented in docs/data.md.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from strokeseg.data.io import Volume, is_nifti, load_mask, load_volume, strip_nifti
from strokeseg.errors import StrokesegError

LAYOUTS = ("atlas_r1.2", "atlas_r2.0", "atlas_r3.0", "nnunet", "folders", "dicom")
_R20_IMAGE = r"(sub-[^_]+)_(ses-[^_]+_)?(.*)space-MNI152NLin2009aSym_T1w\.nii(\.gz)?"
_R30_IMAGE = r"(sub-[^_]+)_(ses-[^_]+_)?(.*)space-orig(_desc-[^_]+)?_T1w\.nii(\.gz)?"
MASK_SUFFIXES = ("", "_mask", "_seg")  # plain folders: images/X.nii.gz <-> masks/X{suffix}.nii.gz


@dataclass
class Subject:
    id: str
    image: Path  # a file, or a folder for a DICOM series
    masks: list[Path]  # the union of these is the lesion mask; [] when unlabeled
    site: str | None = None  # the acquisition site, where the layout says (ATLAS)


@dataclass
class Dataset:
    root: Path
    layout: str
    modality: str  # "mri" | "ct"
    subjects: list[Subject]
    problems: list[str] = field(default_factory=list)  # found while listing (not while reading)


def _walk(root: Path) -> list[Path]:
    """All visible files below ``root`` (hidden files and folders pruned), sorted."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(folder) / f for f in files if not f.startswith(".")]
    return sorted(found)


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _check_unique(subjects: list[Subject]) -> list[Subject]:
    seen: dict[str, Path] = {}
    for s in subjects:
        if s.id in seen:
            raise StrokesegError(f"{s.image}: subject id {s.id!r} also used by {seen[s.id]}")
        seen[s.id] = s.image
    return subjects


def _atlas_r12(root: Path) -> tuple[list[Subject], list[str]]:
    """<site>/<subject>/t01/<subject>_t1w[_deface]_stx.nii.gz + *_LesionSmooth*_stx masks."""
    subjects = []
    for image in _walk(root):
        if not re.search(r"_t1w(_deface)?_stx\.nii(\.gz)?$", image.name):
            continue
        session = image.parent
        if re.fullmatch(r"t\d+", session.name) and session.parent != root:
            sid = session.parent.name + ("" if session.name == "t01" else f"_{session.name}")
        else:
            sid = session.name
        masks = [p for p in _visible(session) if re.search(r"_LesionSmooth.*_stx\.nii", p.name)]
        subjects.append(Subject(sid, image, masks))
    return subjects, []


def _bids_atlas(root: Path, pattern: str) -> list[Subject]:
    """ATLAS's BIDS trees: images whose name matches ``pattern``; masks
    ``<prefix through the space entity>_label-*_desc-T1lesion_mask`` beside them; the site is
    the folder above ``sub-*`` (``R001``..., ``SOOP``) when there is one below ``root``."""
    found = []
    for image in _walk(root):
        match = re.fullmatch(pattern, image.name)
        if not match:
            continue
        prefix = re.match(r".*?_space-[^_]+", image.name).group(0)
        masks = [
            p
            for p in _visible(image.parent)
            if p.name.startswith(prefix + "_label-") and "_desc-T1lesion_mask.nii" in p.name
        ]
        found.append((match.group(1), (match.group(2) or "").rstrip("_"), image, masks))
    counts: dict[str, int] = {}
    for sub, *_ in found:
        counts[sub] = counts.get(sub, 0) + 1
    return [
        Subject(sub if counts[sub] == 1 else f"{sub}_{ses}", image, masks, _site(root, image))
        for sub, ses, image, masks in found
    ]


def _site(root: Path, image: Path) -> str | None:
    subject = next((p for p in image.parents if p.name.startswith("sub-")), None)
    if subject is None or subject.parent == root or root not in subject.parents:
        return None
    return subject.parent.name


def _atlas_r20(root: Path) -> tuple[list[Subject], list[str]]:
    """BIDS: sub-*/ses-*/anat/*_space-MNI152NLin2009aSym_T1w.nii.gz + *_desc-T1lesion_mask."""
    return _bids_atlas(root, _R20_IMAGE), []


def _atlas_r30(root: Path) -> tuple[list[Subject], list[str]]:
    """ATLAS R3.0 as it ships: <SITE>/sub-*/ses-*/anat/*_space-orig_desc-brain_T1w.nii.gz with
    *_space-orig_label-lesion_desc-T1lesion_mask.nii.gz and a *_metadata.csv per session, whose
    ``site`` column (when present) names the site, else the folder above ``sub-*``."""
    subjects, problems = _bids_atlas(root, _R30_IMAGE), []
    for subject in subjects:
        session = subject.image.parent.parent
        tables = [p for d in (session, subject.image.parent) for p in d.glob("*_metadata.csv")]
        for table in tables[:1]:
            try:
                site = _csv_site(table)
            except (OSError, UnicodeDecodeError, csv.Error) as error:
                problems.append(f"{table}: cannot read the metadata table ({error})")
                continue
            subject.site = site or subject.site
    return subjects, problems


def _csv_site(path: Path) -> str | None:
    """The ``site`` column (any case) of a one-row metadata table, or None."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    for row in rows[:1]:
        for key, value in row.items():
            if key and key.strip().lower() == "site" and value and value.strip():
                return value.strip()
    return None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise StrokesegError(f"{path}: cannot read JSON ({error})") from None


def _modality_from_json(path: Path) -> str:
    """nnU-Net v2 ``channel_names`` or v1 ``modality``: {"0": "CT"} -> "ct", anything else "mri"."""
    info = _read_json(path)
    channels = info.get("channel_names", info.get("modality", {"0": "MRI"}))
    if len(channels) != 1:
        raise StrokesegError(f"{path}: {len(channels)} input channels; one is supported")
    return "ct" if str(next(iter(channels.values()))).strip().lower() == "ct" else "mri"


def _nnunet(root: Path) -> tuple[list[Subject], list[str]]:
    """dataset.json, imagesTr/<case>_0000.nii.gz + labelsTr/<case>.nii.gz, imagesTs unlabeled."""
    if not (root / "dataset.json").is_file():
        raise StrokesegError(f"{root}: no dataset.json (an nnU-Net raw dataset needs one)")
    ending = _read_json(root / "dataset.json").get("file_ending", ".nii.gz")
    subjects, problems = [], []
    labels_dir = root / "labelsTr"
    used_labels = set()
    for part in ("imagesTr", "imagesTs"):
        folder = root / part
        if not folder.is_dir():
            continue
        for image in _visible(folder):
            if not image.name.endswith(ending):
                continue
            case = image.name[: -len(ending)]
            if not case.endswith("_0000"):
                problems.append(f"{image}: only single-channel cases (<case>_0000) are supported")
                continue
            case = case[: -len("_0000")]
            masks = []
            if part == "imagesTr":
                label = labels_dir / f"{case}{ending}"
                if label.is_file():
                    masks = [label]
                    used_labels.add(label.name)
                else:
                    problems.append(f"{image}: no label {label}")
            subjects.append(Subject(case, image, masks))
    if labels_dir.is_dir():
        problems += [
            f"{p}: label without an image in imagesTr"
            for p in _visible(labels_dir)
            if p.name.endswith(ending) and p.name not in used_labels
        ]
    return subjects, problems


def _folders(root: Path) -> tuple[list[Subject], list[str]]:
    """images/X.nii.gz with masks/ (or labels/) X.nii.gz, X_mask.nii.gz or X_seg.nii.gz."""
    if not (root / "images").is_dir():
        return [], []
    mask_dir = next((root / d for d in ("masks", "labels") if (root / d).is_dir()), None)
    masks = {strip_nifti(p.name): p for p in _visible(mask_dir) if is_nifti(p)} if mask_dir else {}
    subjects, used = [], set()
    for image in _visible(root / "images"):
        if not is_nifti(image):
            continue
        sid = strip_nifti(image.name)
        mask = next((masks[sid + s] for s in MASK_SUFFIXES if sid + s in masks), None)
        used.add(mask)
        subjects.append(Subject(sid, image, [mask] if mask else []))
    problems = [f"{p}: mask without a matching image" for p in masks.values() if p not in used]
    return subjects, problems


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _holds_dicom(folder: Path) -> bool:
    return any(p.is_file() and _is_dicom(p) for p in _visible(folder))


def _dicom(root: Path) -> tuple[list[Subject], list[str]]:
    """Series folders (or ``root`` itself as one series); mask <series>_mask.nii[.gz] beside it."""
    series = [root] if _holds_dicom(root) else [d for d in _visible(root) if d.is_dir()]
    subjects = []
    for folder in series:
        if not _holds_dicom(folder):
            continue
        beside = [folder.parent / f"{folder.name}_mask{s}" for s in (".nii.gz", ".nii")]
        subjects.append(Subject(folder.name, folder, [p for p in beside if p.is_file()][:1]))
    return subjects, []


_READERS: dict[str, Callable[[Path], tuple[list[Subject], list[str]]]] = {
    "atlas_r1.2": _atlas_r12,
    "atlas_r2.0": _atlas_r20,
    "atlas_r3.0": _atlas_r30,
    "nnunet": _nnunet,
    "folders": _folders,
    "dicom": _dicom,
}


def _detect(root: Path) -> str | None:
    nnunet_parts = ("imagesTr", "imagesTs")
    if (root / "dataset.json").is_file() and any((root / d).is_dir() for d in nnunet_parts):
        return "nnunet"
    if (root / "images").is_dir():
        return "folders"
    names = [p.name for p in _walk(root)]
    if any(re.search(r"space-MNI152NLin2009aSym_T1w\.nii", n) for n in names):
        return "atlas_r2.0"
    if any(re.fullmatch(_R30_IMAGE, n) for n in names):
        return "atlas_r3.0"
    if any(re.search(r"_t1w(_deface)?_stx\.nii", n) for n in names):
        return "atlas_r1.2"
    if _holds_dicom(root) or any(d.is_dir() and _holds_dicom(d) for d in _visible(root)):
        return "dicom"
    return None


def find_dataset(root: str | Path, layout: str | None = None) -> Dataset:
    """List the subjects of the dataset at ``root``; the layout is detected unless given."""
    root = Path(root)
    if not root.is_dir():
        raise StrokesegError(f"{root}: folder not found")
    if not _visible(root):
        raise StrokesegError(f"{root}: folder is empty")
    if layout is not None and layout not in _READERS:
        raise StrokesegError(f"{root}: unknown layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    layout = layout or _detect(root)
    if layout is None:
        raise StrokesegError(f"{root}: no recognised dataset layout ({', '.join(LAYOUTS)})")
    subjects, problems = _READERS[layout](root)
    if not subjects:
        raise StrokesegError(f"{root}: no subjects found for layout {layout}")
    if layout == "dicom":
        modality = "ct"
    elif (root / "dataset.json").is_file():
        modality = _modality_from_json(root / "dataset.json")
    else:
        modality = "mri"
    return Dataset(root, layout, modality, _check_unique(subjects), problems)


def load_subject(subject: Subject) -> tuple[Volume, np.ndarray | None]:
    """The image (RAS) and the union of its masks as uint8 {0,1}, or None when unlabeled."""
    image = load_volume(subject.image)
    return image, (mask_union(subject.masks, like=image) if subject.masks else None)


def mask_union(masks: list[Path], like: Volume | None = None) -> np.ndarray:
    """The union of lesion masks as uint8 {0,1} (``like``: each must fit this image)."""
    union = None
    for path in masks:
        data = load_mask(path, like=like).data
        union = data if union is None else union | data
    return union
