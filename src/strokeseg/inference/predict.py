"""Whole-volume prediction: NIfTI or DICOM in, a uint8 mask in the scan's own geometry out.

The scan is reoriented to RAS, normalised as the checkpoint's training data was, and the
axial slices holding the head are segmented in boxes around it (data/crop.py; ``crop=False``:
every slice zero-padded in-plane up to a multiple of 16, the exact whole-volume path) with the
deployed network on a runtime (runtime.py), and pasted back; voxels outside the boxes are 0.
Deterministic: the same scan and checkpoint give the same bytes.
"""

from __future__ import annotations

import csv
import io
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from strokeseg.data.io import Volume, is_nifti, load_volume, save_like, strip_nifti
from strokeseg.errors import StrokesegError
from strokeseg.evaluation.metrics import label_lesions, volume_ml
from strokeseg.evaluation.report import write_atomic
from strokeseg.inference.runtime import make_runtime
from strokeseg.inference.slicing import Run, scan_probabilities


@dataclass
class Lesions:
    scan: str
    volume_ml: float
    count: int


def segment(
    network: nn.Module,
    volume: Volume,
    modality: str,
    window: str = "brain",
    batch_size: int = 8,
    *,
    crop: bool = True,
    run: Run | None = None,
    meta: dict | None = None,
) -> np.ndarray:
    """Binary lesion mask (uint8, RAS, the volume's shape): p >= 0.5.

    ``crop`` segments only the head's boxes (data/crop.py; False: the exact whole-volume
    path); ``run`` is ``network`` on a runtime (runtime.py; default eager NHWC), made once
    per folder; ``meta`` (the checkpoint's) gives a grid-bound network its training grid.
    """
    run = run or make_runtime(network)
    meta = meta or {}
    context = int((meta.get("data") or {}).get("context_slices") or 0)  # 2.5D checkpoints
    p = scan_probabilities(
        [run], [network], [meta], volume, modality, window,
        crop=crop, batch_size=batch_size, context_slices=context,
    )  # fmt: skip
    return (p >= 0.5).astype(np.uint8)


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


def predict(
    inputs: Path,
    out_dir: Path,
    network: nn.Module,
    meta: dict,
    *,
    overwrite: bool = False,
    progress: bool = True,
    crop: bool = True,
    runtime: str = "eager",
    threads: int | None = None,
) -> tuple[list[Lesions], list[str]]:
    """Segment every scan under ``inputs``; returns lesion rows and one error line per failure.

    Existing outputs are refused up front (before any work) unless ``overwrite``; a bad scan
    is reported and skipped, the others are still written. One network on one runtime serves
    the whole folder, and the next scan is read (a thread) while the current one is segmented.
    """
    from tqdm import tqdm

    scans = scan_inputs(inputs)
    targets = [out_dir / f"{name}_mask.nii.gz" for name, _ in scans] + [out_dir / "lesions.csv"]
    clashes = [str(t) for t in targets if t.exists()]
    if clashes and not overwrite:
        raise StrokesegError(
            f"{clashes[0]}: already exists (pass --overwrite to replace; {len(clashes)} file(s))"
        )
    modality = meta["data"].get("modality", "mri")
    window = meta["data"].get("window", "brain")
    run = make_runtime(network, runtime, threads)
    rows, errors = [], []
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(load_volume, scans[0][1])
        for i, ((name, _), target) in enumerate(
            tqdm(
                list(zip(scans, targets, strict=False)),
                desc="predict",
                unit="scan",
                disable=not progress,
            )
        ):
            loading, pending = pending, None
            if i + 1 < len(scans):
                pending = reader.submit(load_volume, scans[i + 1][1])
            try:
                volume = loading.result()
                mask = segment(network, volume, modality, window, crop=crop, run=run, meta=meta)
                save_like(mask, volume, target, overwrite=overwrite)
                rows.append(lesion_stats(name, mask, volume))
            except StrokesegError as error:
                errors.append(str(error))
                print(f"strokeseg predict: error: {error}", file=sys.stderr)
    if rows:
        write_lesions_csv(rows, out_dir / "lesions.csv")
    return rows, errors
