"""Whole-volume prediction: NIfTI or DICOM in, a uint8 mask in the scan's own geometry out.

Probabilities come from the slice engine (:mod:`strokeseg.inference.engine`); the mask applies
the checkpoint's post-processing (threshold and minimum lesion volume decided on validation
subjects; p >= 0.5 without it). ``lesions.csv`` gives the raw and post-processed figures side
by side. Deterministic: the same scan and checkpoint give the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from strokeseg.data.components import label_lesions
from strokeseg.data.io import (
    Volume,
    is_nifti,
    load_volume,
    refuse_existing,
    save_like,
    save_probabilities_like,
    strip_nifti,
    write_atomic,
)
from strokeseg.data.preprocessing import PreparedScan
from strokeseg.errors import StrokesegError
from strokeseg.evaluation.metrics import volume_ml
from strokeseg.inference.engine import Predictor, Segmentation
from strokeseg.inference.quality import scan_warnings


@dataclass
class Lesions:
    scan: str
    volume_ml: float
    count: int
    raw_volume_ml: float
    raw_count: int
    warnings: list[str] = field(default_factory=list)


def lesion_stats(scan: str, mask: np.ndarray, raw: np.ndarray, voxel_mm3: float) -> Lesions:
    """Lesion volume in mL and count of 26-connected lesions, post-processed and raw."""
    return Lesions(
        scan,
        volume_ml(mask, voxel_mm3),
        label_lesions(mask)[1],
        volume_ml(raw, voxel_mm3),
        label_lesions(raw)[1],
    )


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


def predict_scan(
    name: str, volume: Volume, predictor: Predictor
) -> tuple[Lesions, PreparedScan, Segmentation]:
    """One scan's lesion row (with its quality warnings, also printed on stderr), the scan as
    prepared for the predictor, and its segmentation (RAS)."""
    scan = predictor.prepare(volume)
    result = predictor.segment(scan)
    row = lesion_stats(name, result.mask, result.raw, volume.voxel_mm3)
    row.warnings = scan_warnings(scan, result, predictor)
    for warning in row.warnings:
        print(f"strokeseg: warning: {name}: {warning}", file=sys.stderr)
    return row, scan, result


def write_lesions_csv(rows: list[Lesions], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "scan",
            "lesion_volume_ml",
            "lesion_count",
            "raw_lesion_volume_ml",
            "raw_lesion_count",
            "warnings",
        ]
    )
    writer.writerows(
        [r.scan, f"{r.volume_ml:.4f}", r.count, f"{r.raw_volume_ml:.4f}", r.raw_count]
        + ["; ".join(r.warnings)]
        for r in rows
    )
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


KEPT = "mask kept from an earlier run (--skip-existing): raw figures and checks not re-run"


def summary_path(out_dir: Path, name: str) -> Path:
    """``<scan>_summary.json``: the scan's lesions.csv row and report rows (``gather``)."""
    return out_dir / f"{name}_summary.json"


def write_summary(path: Path, row: Lesions, report: dict | None, overwrite: bool) -> None:
    summary = {"lesions_csv": asdict(row), **({"report": report} if report else {})}
    write_atomic(path, json.dumps(summary, indent=1) + "\n", overwrite=overwrite)


def read_summary(path: Path) -> dict:
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        Lesions(**summary["lesions_csv"])
    except (OSError, ValueError, KeyError, TypeError):
        raise StrokesegError(f"{path}: not a strokeseg scan summary") from None
    return summary


def existing_lesions(name: str, target: Path) -> tuple[Lesions, dict | None]:
    """The lesions.csv row of a scan whose mask a previous run wrote (``--skip-existing``) and
    its report's index record: from its summary, or the row recomputed from the mask (and no
    record) when an older run wrote none."""
    from strokeseg.data.io import load_mask

    summary = summary_path(target.parent, name)
    if summary.exists():
        saved = read_summary(summary)
        return Lesions(**saved["lesions_csv"]), saved.get("report")
    mask = load_mask(target)
    row = lesion_stats(name, mask.data, mask.data, mask.voxel_mm3)  # the raw mask is gone
    row.warnings = [KEPT]  # the probability map is gone too: the checks are not re-run
    return row, None


def each_scan(
    scans: list[tuple[str, Path]],
    segment: Callable[[int, str, Volume], Lesions],
    *,
    kept: Collection[int] = (),
    kept_row: Callable[[int], Lesions] | None = None,
    after: Callable[[list[Lesions]], None] | None = None,
    desc: str = "predict",
    progress: bool = True,
) -> tuple[list[Lesions], list[str]]:
    """The per-scan loop of ``predict`` and ``bids``: ``segment(i, name, volume)`` of each
    (name, path) scan, in order, with the next scan read (a thread) while one is segmented.

    A scan in ``kept`` (its outputs kept from an earlier run) is not read: ``kept_row(i)`` gives
    its row. A scan that fails with a one-line error is reported (``strokeseg <desc>: error:``
    on stderr) and skipped, the others go on; ``after(rows)`` runs after every scan that did
    not fail. Returns the rows and the error lines.
    """
    from tqdm import tqdm

    todo = iter([i for i in range(len(scans)) if i not in kept])
    rows, errors = [], []
    with ThreadPoolExecutor(max_workers=1) as reader:
        loads = {}

        def read_next() -> None:
            j = next(todo, None)
            if j is not None:
                loads[j] = reader.submit(load_volume, scans[j][1])

        read_next()
        for i, (name, _) in enumerate(tqdm(scans, desc=desc, unit="scan", disable=not progress)):
            try:
                if i in loads:
                    read_next()
                    rows.append(segment(i, name, loads.pop(i).result()))
                else:
                    rows.append(kept_row(i))
            except StrokesegError as error:
                errors.append(str(error))
                print(f"strokeseg {desc}: error: {error}", file=sys.stderr)
                continue
            if after is not None:
                after(rows)
    return rows, errors


def predict(
    inputs: Path,
    out_dir: Path,
    predictor: Predictor,
    *,
    overwrite: bool = False,
    skip_existing: bool = False,
    probabilities: bool = False,
    part: tuple[int, int] = (0, 1),
    progress: bool = True,
    on_scan: Callable | None = None,
    on_kept: Callable[[dict | None], None] | None = None,
) -> tuple[list[Lesions], list[str]]:
    """Segment every scan under ``inputs``; returns lesion rows and one error line per failure.

    Existing outputs are refused up front unless ``overwrite``; with ``skip_existing`` a scan
    whose mask exists is kept and its row recomputed from that mask (masks are written
    atomically, so an existing one is whole). lesions.csv is rewritten after every scan, so a
    killed run leaves it consistent with the masks. A bad scan is reported and skipped
    (:func:`each_scan`). ``on_scan(name, scan, segmentation, warnings)`` is called after each
    scan's mask is written (the reports, with the prepared scan); what it returns goes into the
    scan's ``<scan>_summary.json`` beside its lesions.csv row; ``on_kept(record)`` is called,
    in the scans' order, with the report record of each scan kept with ``skip_existing``.
    ``probabilities`` also writes each scan's probability map
    (``<scan>_probabilities.nii.gz``, float32, the mask's geometry). ``part`` (I, N) segments
    every N-th scan from the I-th and writes no lesions.csv for N > 1 (``strokeseg gather``
    writes it from the summaries).
    """
    check_output_folder(inputs, out_dir)
    scans, whole = scan_inputs(inputs)[part[0] :: part[1]], part[1] == 1
    targets = [out_dir / f"{name}_mask.nii.gz" for name, _ in scans] + [out_dir / "lesions.csv"]
    maps = [out_dir / f"{name}_probabilities.nii.gz" for name, _ in scans if probabilities]
    summaries = [summary_path(out_dir, name) for name, _ in scans]
    replace = overwrite or skip_existing
    refuse_existing(
        targets[: len(scans) + whole] + maps + summaries,
        replace,
        also=", or --skip-existing to finish an interrupted run",
    )

    def segment(i: int, name: str, volume: Volume) -> Lesions:
        row, scan, result = predict_scan(name, volume, predictor)
        if probabilities:
            save_probabilities_like(result.probability, volume, maps[i], overwrite=replace)
        report = on_scan(name, scan, result, row.warnings) if on_scan else None
        write_summary(summaries[i], row, report, replace)
        # the mask last: a scan whose mask exists is complete (--skip-existing keeps it)
        save_like(result.mask, volume, targets[i], overwrite=replace)
        return row

    def kept_row(i: int) -> Lesions:
        row, record = existing_lesions(scans[i][0], targets[i])
        if on_kept is not None:
            on_kept(record)
        return row

    keep = skip_existing and not overwrite
    return each_scan(
        scans,
        segment,
        kept={i for i in range(len(scans)) if keep and targets[i].exists()},
        kept_row=kept_row,
        after=(lambda rows: write_lesions_csv(rows, out_dir / "lesions.csv")) if whole else None,
        desc="predict",
        progress=progress,
    )
