"""Writing a synthetic dataset safely: refuse to clobber, atomic files, byte-reproducible gzip."""

from __future__ import annotations

import csv
import gzip
import io
import json
import multiprocessing
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nibabel as nib

from strokeseg.data.io import write_atomic
from strokeseg.errors import StrokesegError


def prepare_output(out: Path, overwrite: bool, generated: tuple[str, ...]) -> None:
    """Create ``out``; an existing non-empty folder needs ``overwrite``.

    With ``overwrite`` only the entries a previous run of the same generator wrote (glob
    patterns in ``generated``) are removed, so stale subjects cannot linger and nothing else
    in the folder is touched.
    """
    if out.exists() and not out.is_dir():
        raise StrokesegError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise StrokesegError(f"{out}: folder is not empty (pass --overwrite to replace it)")
        for pattern in generated:
            for entry in out.glob(pattern):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    out.mkdir(parents=True, exist_ok=True)


def save_nifti(image: nib.Nifti1Image, path: Path) -> None:
    """Save as ``.nii.gz`` with a zero gzip timestamp, so equal images give equal bytes.

    Values are stored as-is with an explicit identity scaling (scl_slope 1, scl_inter 0):
    nibabel writes NaN (also "no scaling") when the data needs none, and some readers only
    trust an explicit slope.
    """
    data = bytearray(image.to_bytes())
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(bytes(data[: nib.Nifti1Header.sizeof_hdr])))
    header["scl_slope"], header["scl_inter"] = 1.0, 0.0
    data[: header.sizeof_hdr] = header.binaryblock
    write_atomic(path, gzip.compress(bytes(data), compresslevel=1, mtime=0), overwrite=True)


def save_json(data: dict, path: Path) -> None:
    write_atomic(path, json.dumps(data, indent=2) + "\n", overwrite=True)


def save_tsv(rows: list[dict], path: Path) -> None:
    """One row per subject, the first row's keys as the header (``participants.tsv``)."""
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, table.getvalue().encode(), overwrite=True)


def each_subject(
    write: Callable[[int], dict], subjects: int, desc: str, progress: bool = True
) -> list[dict]:
    """``write(index)`` for every subject index, in a pool of one process per CPU (each subject
    is drawn from its own seeded stream, so the files do not depend on the order); returns
    the rows in index order. ``write`` must be a picklable (module-level) function."""
    from tqdm import tqdm

    workers = min(os.cpu_count() or 1, subjects)
    bar = dict(total=subjects, desc=desc, unit="subject", disable=not progress)
    if workers <= 1:
        return [write(i) for i in tqdm(range(subjects), **bar)]
    context = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        return list(tqdm(pool.map(write, range(subjects)), **bar))
