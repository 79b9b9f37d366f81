"""Whole-volume prediction: NIfTI or DICOM in, a uint8 mask in the scan's own geometry out.

The scan is reoriented to RAS, normalised as the checkpoint's training data was, cut into
axial slices zero-padded in-plane up to a multiple of 16 (so every voxel is segmented;
training crops down instead), segmented slice by slice with the deployed network, and pasted
back. Deterministic: the same scan and checkpoint give the same bytes.
"""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from strokeseg.data.intensity import normalize
from strokeseg.data.io import Volume, is_nifti, load_volume, save_like, strip_nifti, write_atomic
from strokeseg.data.slices import from_slices, to_slices
from strokeseg.errors import StrokesegError
from strokeseg.evaluation.metrics import label_lesions, volume_ml


@dataclass
class Lesions:
    scan: str
    volume_ml: float
    count: int


def segment(
    network: nn.Module, volume: Volume, modality: str, window: str = "brain", batch_size: int = 4
) -> np.ndarray:
    """Binary lesion mask (uint8, RAS, the volume's shape): p >= 0.5, i.e. logits >= 0."""
    slices = to_slices(normalize(volume.data, modality, window), pad=True)
    out = np.empty(slices.shape, dtype=np.uint8)
    network = network.to(memory_format=torch.channels_last)  # ~10 % faster on CPU (benchmarks/)
    with torch.inference_mode():
        for start in range(0, len(slices), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(slices[start : start + batch_size]))
            x = x.unsqueeze(1).float().contiguous(memory_format=torch.channels_last)
            logits = network(x)
            out[start : start + batch_size] = (logits[:, 0] >= 0).numpy()
    return from_slices(out, volume.data.shape).astype(np.uint8)


def lesion_stats(scan: str, mask: np.ndarray, volume: Volume) -> Lesions:
    """Lesion volume in mL and count of 26-connected lesions."""
    return Lesions(scan, volume_ml(mask, volume.voxel_mm3), label_lesions(mask)[1])


def scan_inputs(path: Path) -> list[tuple[str, Path]]:
    """(scan name, path) pairs: one NIfTI file, a folder of NIfTI files, or a DICOM folder."""
    if not path.exists():
        raise StrokesegError(f"{path}: no such file or folder")
    if path.is_file():
        if not is_nifti(path):
            raise StrokesegError(f"{path}: not a NIfTI file (.nii or .nii.gz)")
        return [(strip_nifti(path.name), path)]
    children = sorted(p for p in path.iterdir() if not p.name.startswith("."))
    scans = [(strip_nifti(p.name), p) for p in children if p.is_file() and is_nifti(p)]
    if scans:
        return scans
    if any(p.is_file() for p in children):  # a folder of DICOM files is one series
        return [(path.name, path)]
    raise StrokesegError(f"{path}: no NIfTI files or DICOM series found")


def write_lesions_csv(rows: list[Lesions], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["scan", "lesion_volume_ml", "lesion_count"])
    writer.writerows([r.scan, f"{r.volume_ml:.4f}", r.count] for r in rows)
    write_atomic(path, buffer.getvalue(), overwrite=True)


def check_output_folder(inputs: Path, out_dir: Path) -> None:
    """Refuse an output folder that is the folder the scans are listed from: the next run
    there would segment strokeseg's own masks as scans."""
    listed = inputs if inputs.is_dir() else inputs.parent
    if out_dir.resolve() == listed.resolve():
        raise StrokesegError(
            f"{out_dir}: output folder is the input folder, so a later run would read the masks "
            "as scans; choose another -o (a subfolder is fine)"
        )


def existing_lesions(name: str, target: Path) -> Lesions:
    """The lesions.csv row of a scan whose mask a previous run wrote (``--skip-existing``)."""
    from strokeseg.data.io import load_mask

    mask = load_mask(target)
    return lesion_stats(name, mask.data, mask)


def predict(
    inputs: Path,
    out_dir: Path,
    network: nn.Module,
    meta: dict,
    *,
    overwrite: bool = False,
    skip_existing: bool = False,
    progress: bool = True,
) -> tuple[list[Lesions], list[str]]:
    """Segment every scan under ``inputs``; returns lesion rows and one error line per failure.

    Existing outputs are refused up front (before any work) unless ``overwrite``; with
    ``skip_existing`` a scan whose mask exists is not segmented again and its row is
    recomputed from that mask (masks are written atomically, so an existing one is whole).
    lesions.csv is rewritten after every scan, so a killed run leaves it consistent with
    the masks. A bad scan is reported and skipped, the others are still written.
    """
    from tqdm import tqdm

    check_output_folder(inputs, out_dir)
    scans = scan_inputs(inputs)
    targets = [out_dir / f"{name}_mask.nii.gz" for name, _ in scans] + [out_dir / "lesions.csv"]
    clashes = [str(t) for t in targets if t.exists()]
    if clashes and not (overwrite or skip_existing):
        raise StrokesegError(
            f"{clashes[0]}: already exists (pass --overwrite to replace, or --skip-existing to "
            f"finish an interrupted run; {len(clashes)} file(s))"
        )
    modality = meta["data"].get("modality", "mri")
    window = meta["data"].get("window", "brain")
    rows, errors = [], []
    for (name, path), target in tqdm(
        list(zip(scans, targets, strict=False)), desc="predict", unit="scan", disable=not progress
    ):
        try:
            if skip_existing and target.exists() and not overwrite:
                rows.append(existing_lesions(name, target))
            else:
                volume = load_volume(path)
                mask = segment(network, volume, modality, window)
                save_like(mask, volume, target, overwrite=overwrite or skip_existing)
                rows.append(lesion_stats(name, mask, volume))
        except StrokesegError as error:
            errors.append(str(error))
            print(f"strokeseg predict: error: {error}", file=sys.stderr)
            continue
        write_lesions_csv(rows, out_dir / "lesions.csv")
    return rows, errors
