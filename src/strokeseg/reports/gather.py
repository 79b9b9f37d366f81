"""``strokeseg gather``: the run's tables and index from the scans' summaries.

A folder split across machines (``predict --part I --parts N``) leaves per-scan outputs only;
each scan's ``<scan>_summary.json`` holds its ``lesions.csv`` row and, with ``--report``, its
report rows and thumbnail. Gathering them in the input folder's order gives the same bytes as
one run over the whole folder.
"""

from __future__ import annotations

from pathlib import Path

from strokeseg.data.io import refuse_existing
from strokeseg.errors import StrokesegError
from strokeseg.inference.predict import (
    Lesions,
    read_summary,
    scan_inputs,
    summary_path,
    write_lesions_csv,
)
from strokeseg.reports.scan import RUN_FILES, ScanResult, write_run_files


def _check(out_dir: Path, paths: list[Path], reports: list, overwrite: bool) -> None:
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise StrokesegError(
            f"{missing[0]}: not found; {len(missing)} of {len(paths)} scan(s) not segmented "
            "yet (run the missing parts, or predict --skip-existing)"
        )
    if any(reports) and not all(reports):
        raise StrokesegError(
            f"{out_dir}: some scans were segmented with --report and some without; "
            "run every part alike"
        )
    targets = [out_dir / "lesions.csv"] + [out_dir / n for n in RUN_FILES if all(reports)]
    refuse_existing(targets, overwrite)


def gather(inputs: Path, out_dir: Path, *, overwrite: bool = False) -> list[Path]:
    """Write ``lesions.csv`` (and, when the scans have reports, ``lesions_by_lesion.csv``,
    ``territories.csv`` and ``report.html``) from the summaries of every scan under
    ``inputs``; nothing is written unless every scan has one."""
    paths = [summary_path(out_dir, name) for name, _ in scan_inputs(inputs)]
    _check(out_dir, paths, [True] * len(paths), overwrite=True)  # all present
    summaries = [read_summary(p) for p in paths]
    reports = [s.get("report") for s in summaries]
    _check(out_dir, paths, reports, overwrite)
    write_lesions_csv([Lesions(**s["lesions_csv"]) for s in summaries], out_dir / "lesions.csv")
    written = [out_dir / "lesions.csv"]
    if all(reports):
        results = [ScanResult.from_record(r, out_dir) for r in reports]
        meta = {"model_name": reports[0]["model"]}
        written += write_run_files(out_dir, results, reports[0]["checkpoint"], meta)
    return written
