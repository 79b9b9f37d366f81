"""``evaluate``'s ``report.html``: per-subject table, Bland-Altman, Dice by size, overlays.

:class:`OverlayCollector` keeps, per subject, one axial slice (the one with the largest true
lesion area, as the overlay figures use) of the image, the true and the predicted mask, so the
best, median and worst subjects can be drawn after all subjects are scored without holding
their volumes; the slices wait in a temporary folder, so memory does not grow with the number
of subjects. Without images (``--pred``/``--gt``) the overlays show the masks alone.
"""

from __future__ import annotations

import csv
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from strokeseg import __version__
from strokeseg.data.intensity import normalize
from strokeseg.data.io import Volume, refuse_existing, write_atomic
from strokeseg.evaluation.figures import largest_lesion_slice
from strokeseg.evaluation.report import LABELS, SHORT_LABELS
from strokeseg.reports import figures, html

REPORT = "report.html"
COLUMNS = (
    ("subject", "subject"),
    *(
        (key, SHORT_LABELS[key])
        for key in (
            "dice",
            "gt_volume_ml",
            "pred_volume_ml",
            "n_gt_lesions",
            "n_pred_lesions",
            "lesion_f1",
        )
    ),
)


def _spool() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="strokeseg-overlays-")


@dataclass
class OverlayCollector:
    """One 2D slice per subject (image or None, truth, prediction) and its pixel spacing, each
    in a file of a temporary folder (removed with the collector) until the report reads it."""

    files: dict[str, Path] = field(default_factory=dict)
    folder: tempfile.TemporaryDirectory = field(default_factory=_spool, repr=False)

    def add(
        self,
        subject: str,
        image: Volume | None,
        gt: np.ndarray,
        pred: np.ndarray,
        modality: str = "mri",
        window: str = "brain",
    ) -> None:
        k = largest_lesion_slice(gt)
        plane, spacing = None, (1.0, 1.0)
        if image is not None:
            plane = normalize(image.data[:, :, k], modality, window)
            spacing = image.spacing[:2]
        path = Path(self.folder.name) / f"{len(self.files)}.npz"
        np.savez_compressed(
            path,
            plane=np.zeros(0) if plane is None else plane,
            has_plane=plane is not None,
            gt=gt[:, :, k] > 0,
            pred=pred[:, :, k] > 0,
            spacing=np.asarray(spacing),
            k=k,
        )
        self.files[subject] = path

    def slices(self, subject: str) -> tuple:
        """(image plane or None, truth, prediction, pixel spacing, slice index) of ``subject``."""
        with np.load(self.files[subject]) as f:
            plane = f["plane"] if f["has_plane"] else None
            return plane, f["gt"], f["pred"], tuple(f["spacing"]), int(f["k"])

    def case(self, case: tuple) -> tuple:
        """Keep a (subject, pred, gt, voxel mm3) case of ``evaluate --pred --gt`` and pass it on."""
        self.add(case[0], None, case[2], case[1])
        return case


def check_report_writable(out: Path, overwrite: bool) -> None:
    """Refuse an existing report.html before any work (unless ``overwrite``)."""
    refuse_existing([Path(out) / REPORT], overwrite)


def read_rows(path: Path) -> list[dict]:
    """per_subject.csv back as dicts of floats (subject kept as text)."""
    with open(path, encoding="utf-8", newline="") as f:
        return [
            {k: (v if k == "subject" else float(v)) for k, v in row.items()}
            for row in csv.DictReader(f)
        ]


def pick_subjects(rows: list[dict]) -> list[tuple[str, dict]]:
    """(label, row) of the best, median and worst subject by Dice (NaN Dice left out)."""
    scored = sorted((r for r in rows if not math.isnan(r["dice"])), key=lambda r: -r["dice"])
    if not scored:
        return []
    picks = [("best", scored[0]), ("median", scored[len(scored) // 2]), ("worst", scored[-1])]
    seen, unique = set(), []
    for label, row in picks:
        if row["subject"] not in seen:
            seen.add(row["subject"])
            unique.append((label, row))
    return unique


def _overlay(collector: OverlayCollector, label: str, row: dict) -> str:
    plane, gt, pred, spacing, k = collector.slices(row["subject"])
    background = plane if plane is not None else gt * 0.35
    title = f"{label}: {row['subject']}, Dice {row['dice']:.3f} (axial {k})"
    return html.image(figures.subject_overlay(background, gt, pred, spacing, title), title)


def _cell(value) -> str:
    return value if isinstance(value, str) else f"{value:.3f}" if value % 1 else f"{value:.0f}"


def evaluation_page(rows: list[dict], summary: dict, collector: OverlayCollector | None) -> str:
    true = np.array([r["gt_volume_ml"] for r in rows])
    pred = np.array([r["pred_volume_ml"] for r in rows])
    dice = np.array([r["dice"] for r in rows])
    headline = [
        ("subjects", summary.get("n_subjects", len(rows))),
        ("per-subject Dice", f"{summary['dice_mean']:.3f} ± {summary['dice_std']:.3f}"),
        (SHORT_LABELS["dice_pooled"], f"{summary['dice_pooled']:.3f}"),
        (LABELS["lesion_f1"], f"{summary['lesion_f1_mean']:.3f}"),
        ("empty policy", summary.get("empty_policy", "one")),
    ]
    if "checkpoint" in summary:
        headline.insert(0, ("checkpoint", f"{summary['checkpoint']} ({summary.get('model')})"))
    body = "<h2>Summary</h2>" + html.fields(headline)
    body += "<h2>Volumes and Dice by lesion size</h2>"
    body += html.image(figures.bland_altman(pred, true), "Bland-Altman plot") + " "
    body += html.image(figures.dice_by_size(true, dice), "Dice by lesion size")
    if collector is not None and collector.files:
        picks = [p for p in pick_subjects(rows) if p[1]["subject"] in collector.files]
        body += "<h2>Best, median and worst subjects</h2>"
        body += '<p class="small">Green: true lesion; red: prediction.</p>'
        body += " ".join(_overlay(collector, label, row) for label, row in picks)
    body += "<h2>Per subject</h2>"
    body += html.table(
        [title for _, title in COLUMNS],
        ([_cell(r[key]) for key, _ in COLUMNS] for r in rows),
        numeric=tuple(range(1, len(COLUMNS))),
    )
    body += f'<p class="small">Definitions: docs/metrics.md. strokeseg {__version__}.</p>'
    return html.page("strokeseg evaluation report", body)


def write_evaluation_report(
    out: Path,
    rows: list[dict],
    summary: dict,
    collector: OverlayCollector | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    return write_atomic(
        Path(out) / REPORT, evaluation_page(rows, summary, collector), overwrite=overwrite
    )
