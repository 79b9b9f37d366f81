"""The per-scan report, the run index and the per-lesion files that ``predict --report`` adds.

:class:`RunReport` is fed one scan at a time (the volume, its mask, its probability map and
its warnings, all RAS arrays) and holds only the small index rows between scans.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from strokeseg import __version__
from strokeseg.data.fingerprint import describe_range
from strokeseg.data.io import refuse_existing, save_labels_like, write_atomic
from strokeseg.data.preprocessing import PreparedScan, TrainingData
from strokeseg.inference.engine import Segmentation
from strokeseg.inference.native import template_map
from strokeseg.reports import figures, html, territories, viewers
from strokeseg.reports.lesions import (
    Lesion,
    lesion_table,
    lesions_csv,
    midline_x,
    relabel_by_size,
)

INDEX = "report.html"
LESION_CSV = "lesions_by_lesion.csv"
TERRITORY_CSV = "territories.csv"
RUN_FILES = (INDEX, LESION_CSV, TERRITORY_CSV)


def _range(entry: dict | None, unit: str) -> str:
    return describe_range(entry["min"], entry["max"], unit) if entry else "not recorded"


def training_summary(meta: dict) -> list[tuple[str, object]]:
    """The checkpoint's training data, as label/value pairs for the report."""
    data: TrainingData = meta["data"]
    fp = data.fingerprint or {}
    pairs: list[tuple[str, object]] = [
        ("model", meta.get("model_name", "?")),
        ("trained with strokeseg", meta.get("version", "?")),
        ("training data", f"{data.layout or '?'} layout, {data.preprocessing.modality}"),
    ]
    if fp:
        pairs += [
            ("training scans", f"{fp['n_scans']} ({fp['n_measured']} measured)"),
            ("training voxel size", _range(fp.get("spacing_mm"), " mm")),
            ("training field of view", _range(fp.get("fov_mm"), " mm")),
            ("training orientations", ", ".join(fp.get("axcodes", [])) or "?"),
            ("training contrasts", ", ".join(fp.get("contrasts", [])) or "not in file names"),
        ]
    else:
        pairs.append(("training statistics", "not stored in this checkpoint (older strokeseg)"))
    return pairs


def lesion_rows(lesions: list[Lesion]) -> list[list[object]]:
    """The report's lesion table; a territory column when the scan has template coordinates."""
    rows = []
    for les in lesions:
        mni = ", ".join(f"{v:.1f}" for v in les.mni_mm) if les.mni_mm else "not on MNI grid"
        rows.append(
            [
                les.id,
                f"{les.volume_ml:.3f}",
                ", ".join(f"{v:.1f}" for v in les.centroid_mm),
                mni,
                les.hemisphere,
                f"{les.axial_slices[0]}-{les.axial_slices[1]}",
                f"{les.mean_probability:.2f}",
            ]
        )
        if les.territories is not None:
            name, percent = les.territories.main()
            rows[-1].append(f"{name}\u00a0({percent:.0f}\u00a0%)")  # kept on one line
    return rows


LESION_HEADERS = (
    "id",
    "volume (mL)",
    "centroid x, y, z (scanner mm, RAS)",
    "MNI x, y, z (mm)",
    "hemisphere",
    "axial slices",
    "mean probability",
    "main vascular territory (share)",
)


@dataclass
class ScanResult:
    """What one scan's report shows (RAS arrays are not kept after the report is written)."""

    name: str
    lesions: list[Lesion]
    warnings: list[str]
    total_ml: float
    thumbnail: bytes
    report: Path
    on_template: bool = False  # template coordinates known: territories given

    def to_record(self) -> dict:
        """Plain data for the scan's summary file, from which ``gather`` rebuilds the run's
        tables and index exactly."""
        record = asdict(self)
        record["thumbnail"] = base64.b64encode(self.thumbnail).decode("ascii")
        record["report"] = self.report.name
        return record

    @classmethod
    def from_record(cls, record: dict, folder: Path) -> ScanResult:
        """The result :meth:`to_record` describes (its report in ``folder``)."""
        lesions = []
        for les in record["lesions"]:
            parts = les["territories"]
            if parts is not None:
                voxels = {int(k): v for k, v in parts["voxels"].items()}
                parts = territories.LesionTerritories(voxels, parts["left"], parts["right"])
            mni = tuple(les["mni_mm"]) if les["mni_mm"] else None
            fields = {k: tuple(les[k]) for k in ("centroid_mm", "axial_slices")}
            lesions.append(Lesion(**{**les, **fields, "mni_mm": mni, "territories": parts}))
        return cls(
            record["name"],
            lesions,
            record["warnings"],
            record["total_ml"],
            base64.b64decode(record["thumbnail"]),
            folder / record["report"],
            record["on_template"],
        )


def view_centre(scan: PreparedScan, labels: np.ndarray) -> tuple[np.ndarray, str]:
    """The voxel the views pass through, and the words for it: the largest lesion's centre,
    else the head's, else the volume's."""
    if labels.any():
        return np.round(np.mean(np.nonzero(labels == 1), axis=1)).astype(int), (
            "through the largest lesion"
        )
    head = scan.head
    if head.any():
        return np.round(np.mean(np.nonzero(head), axis=1)).astype(int), "through the head's centre"
    return np.asarray(head.shape) // 2, "through the head's centre"


def scan_fields(scan: PreparedScan) -> list[tuple[str, object]]:
    """The scan as stored, and the grid and modality it was segmented with."""
    volume = scan.volume
    header = volume.source.header
    mni = scan.on_template
    return [
        ("file", volume.path),
        ("shape (as stored)", " x ".join(str(n) for n in volume.source.shape[:3])),
        ("voxel size (as stored)", " x ".join(f"{z:g}" for z in header.get_zooms()[:3]) + " mm"),
        ("orientation (as stored)", "".join(nib.aff2axcodes(volume.source.affine))),
        (
            "modality",
            f"{scan.preprocessing.modality} (the checkpoint's; see the warnings for a mismatch)",
        ),
        ("grid", "MNI152 1 mm (ATLAS R2.0)" if mni else "not the MNI152 grid (scanner space)"),
    ]


def lesion_section(lesions: list[Lesion], on_template: bool) -> str:
    """The lesion table (a territory column on template coordinates) and its notes."""
    table = (
        html.table(
            LESION_HEADERS[: 8 if on_template else 7], lesion_rows(lesions), numeric=(0, 1, 6)
        )
        if lesions
        else "<p>No lesion in the mask.</p>"
    )
    return (
        table
        + '<p class="small">Axial slices are voxel indices k of the scan in RAS order (as in the '
        "montage); hemisphere: the side holding at least 80 % of the lesion's voxels.</p>"
    )


def scan_page(
    name: str,
    scan: PreparedScan,
    mask: np.ndarray,
    labels: np.ndarray,
    lesions: list[Lesion],
    warnings: list[str],
    report: RunReport,
    labels_name: str,
    on_template: bool = False,
) -> tuple[str, bytes]:
    """The per-scan HTML of ``report`` and its thumbnail PNG; ``on_template``: template
    coordinates known (territories shown)."""
    display, spacing, head = scan.image, scan.spacing, scan.head
    total = sum(les.volume_ml for les in lesions)
    centre, through = view_centre(scan, labels)
    result_fields = [
        ("total lesion volume", f"{total:.3f} mL"),
        ("lesions (26-connected)", len(lesions)),
        ("threshold", f"probability >= {report.threshold:g}"),
        ("label image", f"{labels_name} (ids as in the table)"),
    ]
    views = figures.orthogonal_views(display, mask, spacing, tuple(centre), head, through)
    checkpoint = [("checkpoint", report.checkpoint), *training_summary(report.meta)]
    body = (
        "<h2>Result</h2>"
        + html.fields(result_fields)
        + "<h2>Quality warnings</h2>"
        + html.warning_list(warnings)
        + "<h2>Lesions (largest first)</h2>"
        + lesion_section(lesions, on_template)
        + "<h2>Vascular territories</h2>"
        + territories.section(lesions, on_template)
        + "<h2>Axial montage</h2>"
        + f'<p class="small">Images in the {figures.CONVENTION}; the red line is the mask '
        "outline; the slice number is the axial index k.</p>"
        + html.image(figures.axial_montage(display, mask, spacing, head), "axial montage")
        + "<h2>Coronal and sagittal views</h2>"
        + html.image(views, "coronal and sagittal views")
        + "<h2>Scan</h2>"
        + html.fields(scan_fields(scan))
        + "<h2>Checkpoint</h2>"
        + html.fields(checkpoint)
        + f'<p class="small">strokeseg {html.escape(__version__)}</p>'
    )
    thumb = figures.thumbnail(display, mask, spacing, int(centre[2]), head)
    return html.page(f"strokeseg lesion report: {name}", body), thumb


def index_page(results: list[ScanResult], checkpoint: str, meta: dict, folder: Path) -> str:
    rows = []
    for r in results:
        rows.append(
            [
                html.Raw(html.image(r.thumbnail, f"{r.name} thumbnail", width=110)),
                html.link(r.report.relative_to(folder).as_posix(), r.name),
                f"{r.total_ml:.3f}",
                len(r.lesions),
                html.Raw(html.warning_list(r.warnings)) if r.warnings else "none",
            ]
        )
    body = (
        f"<p>{len(results)} scan(s); checkpoint {html.escape(checkpoint)} "
        f"({html.escape(str(meta.get('model_name', '?')))}); strokeseg "
        f"{html.escape(__version__)}.</p>"
        + html.table(
            (
                "axial slice (R on the right)",
                "scan",
                "lesion volume (mL)",
                "lesions",
                "warnings",
            ),
            rows,
            numeric=(2, 3),
        )
    )
    return html.page("strokeseg run report", body)


@dataclass
class RunReport:
    """Collects per-scan results during ``predict`` and writes the index at the end."""

    out_dir: Path
    meta: dict
    checkpoint: str
    overwrite: bool = False
    threshold: float = 0.5
    results: list[ScanResult] = field(default_factory=list)

    def scan_targets(self, name: str) -> tuple[Path, Path]:
        """(label image, per-scan report) of scan ``name`` in the output folder."""
        return self.out_dir / f"{name}_lesions.nii.gz", self.out_dir / f"{name}_report.html"

    def check(self, names: list[str], run_files: bool = True) -> None:
        """Refuse up front when an output exists (before any scan is segmented); the run's
        index and tables too unless ``run_files`` is False (a part of a split run)."""
        targets = [p for n in names for p in self.scan_targets(n)]
        targets += [p for n in names for p in viewers.viewer_paths(self.scan_targets(n)[0])]
        targets += [self.out_dir / n for n in RUN_FILES if run_files]
        refuse_existing(targets, self.overwrite)

    def add(
        self,
        name: str,
        scan: PreparedScan,
        result: Segmentation,
        warnings: list[str],
        targets: tuple[Path, Path] | None = None,
    ) -> ScanResult:
        """Write the scan's label image and report; keep its index row. Template (MNI)
        coordinates come from the scan's grid or its registration (``inference/native.py``)."""
        to_template = template_map(scan, result.template)
        volume, mask, probability = scan.volume, result.mask, result.probability
        labels_path, report_path = targets or self.scan_targets(name)
        labels = relabel_by_size(mask)
        lesions = lesion_table(
            labels,
            probability,
            volume.affine,
            midline_mm=midline_x(scan),
            to_template=to_template,
        )
        if to_template is not None:
            for les, part in zip(
                lesions, territories.lesion_territories(labels, to_template), strict=True
            ):
                les.territories = part
        save_labels_like(labels, volume, labels_path, overwrite=self.overwrite)
        itksnap, slicer = viewers.viewer_paths(labels_path)
        write_atomic(itksnap, viewers.itksnap_labels(lesions), overwrite=self.overwrite)
        write_atomic(slicer, viewers.slicer_colours(lesions, slicer), overwrite=self.overwrite)
        text, thumb = scan_page(
            name,
            scan,
            mask,
            labels,
            lesions,
            warnings,
            self,
            labels_path.name,
            on_template=to_template is not None,
        )
        write_atomic(report_path, text, overwrite=self.overwrite)
        total = sum(x.volume_ml for x in lesions)
        result = ScanResult(
            name, lesions, list(warnings), total, thumb, report_path, to_template is not None
        )
        self.results.append(result)
        return result

    def record(
        self, name: str, scan: PreparedScan, result: Segmentation, warnings: list[str]
    ) -> dict:
        """:meth:`add` for ``predict``'s ``on_scan``, returning the scan's summary record."""
        record = self.add(name, scan, result, warnings).to_record()
        return {**record, "checkpoint": self.checkpoint, "model": self.meta.get("model_name")}

    def adopt(self, record: dict | None) -> None:
        """Keep the index row of a scan as an earlier run recorded it in its summary (a scan
        ``--skip-existing`` kept). A scan without a ``record`` (segmented without
        ``--report``, or killed before its summary was written) gets no row."""
        if record:
            self.results.append(ScanResult.from_record(record, self.out_dir))

    def finish(self) -> list[Path]:
        """Write ``lesions_by_lesion.csv``, ``territories.csv`` and the index ``report.html``."""
        return write_run_files(self.out_dir, self.results, self.checkpoint, self.meta)


def write_run_files(
    folder: Path, results: list[ScanResult], checkpoint: str, meta: dict
) -> list[Path]:
    """The run's ``lesions_by_lesion.csv``, ``territories.csv`` and index ``report.html``."""
    table = lesions_csv([(r.name, r.lesions) for r in results])
    regions = territories.territories_csv([(r.name, r.lesions, r.on_template) for r in results])
    index = index_page(results, checkpoint, meta, folder)
    return [
        write_atomic(folder / LESION_CSV, table, overwrite=True),
        write_atomic(folder / TERRITORY_CSV, regions, overwrite=True),
        write_atomic(folder / INDEX, index, overwrite=True),
    ]
