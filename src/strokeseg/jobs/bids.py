"""``strokeseg bids BIDS_DIR OUT_DIR participant``: BIDS in, BIDS derivatives out.

Every chosen scan goes through ``predict``'s per-scan loop (:func:`strokeseg.inference.
predict.each_scan`: the next scan read meanwhile, a bad scan reported and skipped, kept scans
with ``skip_existing``); its files are named and described by :mod:`strokeseg.reports.bids`.
"""

from __future__ import annotations

from pathlib import Path

from strokeseg.data.io import (
    Volume,
    refuse_existing,
    save_like,
    save_probabilities_like,
    write_atomic,
)
from strokeseg.errors import StrokesegError
from strokeseg.inference.engine import Predictor
from strokeseg.inference.predict import (
    Lesions,
    each_scan,
    existing_lesions,
    predict_scan,
    write_lesions_csv,
    write_summary,
)
from strokeseg.reports.bids import (
    IGNORED,
    BidsScan,
    dataset_description,
    dseg_tsv,
    find_scans,
    mask_sidecar,
    output_paths,
    probseg_sidecar,
    to_json,
)
from strokeseg.reports.scan import INDEX, LESION_CSV, TERRITORY_CSV, RunReport

TOP_FILES = (
    "dataset_description.json",
    ".bidsignore",
    "lesions.csv",
    INDEX,
    LESION_CSV,
    TERRITORY_CSV,
)


def write_scan(
    scan: BidsScan,
    paths: dict[str, Path],
    volume: Volume,
    predictor: Predictor,
    report: RunReport,
    bids_dir: Path,
) -> Lesions:
    """Segment one scan into its derivatives; the mask is written last, so a scan whose mask
    exists has every file (``skip_existing`` keeps it)."""
    name, checkpoint, threshold = scan.stem(with_space=False), report.checkpoint, report.threshold
    overwrite = report.overwrite
    row, prepared, seg = predict_scan(name, volume, predictor)
    save_probabilities_like(seg.probability, volume, paths["probseg"], overwrite=overwrite)
    probseg = probseg_sidecar(scan, bids_dir, checkpoint, threshold)
    write_atomic(paths["probseg_sidecar"], to_json(probseg), overwrite=overwrite)
    targets = (paths["dseg"], paths["report"])
    result = report.add(name, prepared, seg, row.warnings, targets)
    sidecar = to_json(mask_sidecar(scan, bids_dir, checkpoint, threshold, result))
    write_atomic(paths["sidecar"], sidecar, overwrite=overwrite)
    write_atomic(paths["lookup"], dseg_tsv(len(result.lesions)), overwrite=overwrite)
    write_summary(paths["summary"], row, result.to_record(), overwrite)  # the index row
    save_like(seg.mask, volume, paths["mask"], overwrite=overwrite)
    return row


def kept_scan(name: str, paths: dict[str, Path], report: RunReport) -> Lesions:
    """The lesions.csv row of a scan an earlier run segmented, its index row kept too."""
    row, record = existing_lesions(name, paths["mask"])
    report.adopt(record)
    return row


def run_app(
    bids_dir: Path,
    out_dir: Path,
    predictor: Predictor,
    checkpoint: str,
    *,
    suffix: str = "T1w",
    labels: list[str] | None = None,
    overwrite: bool = False,
    skip_existing: bool = False,
    progress: bool = True,
) -> tuple[list[Lesions], list[str]]:
    """Segment every chosen scan of ``bids_dir`` into the derivatives dataset ``out_dir``.

    Returns the lesions.csv rows and one error line per failed scan (the others are written).
    Existing outputs are refused before any work unless ``overwrite``; with ``skip_existing``
    a scan whose mask exists is kept (its row recomputed from the mask) and the rest are
    segmented.
    """
    bids_dir, out_dir = Path(bids_dir), Path(out_dir)
    if out_dir.resolve() == bids_dir.resolve():
        raise StrokesegError(f"{out_dir}: the output folder must differ from the BIDS input")
    scans = find_scans(bids_dir, suffix, labels)
    plans = [{k: out_dir / p for k, p in output_paths(scan).items()} for scan in scans]
    targets = [p for paths in plans for p in paths.values()] + [out_dir / n for n in TOP_FILES]
    replace = overwrite or skip_existing
    refuse_existing(targets, replace, also=", or --skip-existing to finish an interrupted run")
    report = RunReport(out_dir, predictor.meta, checkpoint, replace, predictor.rule.threshold)
    names = [(scan.stem(with_space=False), scan.path) for scan in scans]
    keep = skip_existing and not overwrite
    rows, errors = each_scan(
        names,
        lambda i, _, volume: write_scan(scans[i], plans[i], volume, predictor, report, bids_dir),
        kept={i for i, paths in enumerate(plans) if keep and paths["mask"].exists()},
        kept_row=lambda i: kept_scan(names[i][0], plans[i], report),
        desc="bids",
        progress=progress,
    )
    description = to_json(dataset_description(bids_dir, checkpoint))
    write_atomic(out_dir / "dataset_description.json", description, overwrite=True)
    write_atomic(out_dir / ".bidsignore", "\n".join(IGNORED) + "\n", overwrite=True)
    if rows:
        write_lesions_csv(rows, out_dir / "lesions.csv")
    if report.results:
        report.finish()
    return rows, errors
