"""The BIDS side of ``strokeseg bids``: input scans, derivative names, sidecars.

Inputs are the anatomical scans ``sub-<label>/[ses-<label>/]anat/*_<suffix>.nii[.gz]`` of a
BIDS dataset (ATLAS R2.0 and SynthATLAS among them). Per scan the derivatives dataset gets,
beside the source's folder structure and named from its entities (BIDS derivatives,
"imaging data types": masks and discrete segmentations):

- ``..._space-<as input>_desc-lesion_mask.nii.gz`` and its ``.json`` sidecar (``Type``
  "Lesion", ``Sources``, checkpoint, threshold, volumes, warnings);
- ``..._space-<as input>_desc-lesion_dseg.nii.gz`` (lesion ids of the report's table) and its
  ``_dseg.tsv`` look-up table;
- ``..._space-<as input>_desc-lesion_probseg.nii.gz`` (the lesion probability, float32, before
  the threshold) and its ``.json`` sidecar;
- the scan's HTML report at the dataset's top level (``<sub>[_<ses>]...html``, as fMRIPrep
  places its reports), the run index ``report.html``, ``lesions.csv`` and
  ``lesions_by_lesion.csv``, all listed in ``.bidsignore``.

``dataset_description.json`` declares ``DatasetType: derivative`` with ``GeneratedBy`` and a
``DatasetLinks`` entry for the input (so ``Sources`` are BIDS URIs ``bids:raw:...``). Without
a ``space`` entity in the input name the outputs have none (the input's own space). The job
that segments the scans and writes these files is :mod:`strokeseg.jobs.bids`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from strokeseg import __version__
from strokeseg.errors import StrokesegError
from strokeseg.reports.scan import ScanResult
from strokeseg.reports.territories import ATLAS_CITATION, NOT_ON_TEMPLATE, combine, region_name
from strokeseg.reports.viewers import viewer_paths

BIDS_VERSION = "1.10.0"
ENTITY_ORDER = ("sub", "ses", "task", "acq", "ce", "rec", "run", "echo", "part", "space")
"""Entities carried from the input name, in the specification's order (space last of them);
``desc`` follows. Other input entities (label, desc, ...) describe the input and are dropped."""
DESC = "lesion"
IGNORED = (
    "*.html",
    "*_summary.json",
    "lesions.csv",
    "lesions_by_lesion.csv",
    "territories.csv",
    "*.label.txt",
    "*.ctbl",
)
_PAIR = re.compile(r"([a-zA-Z]+)-([a-zA-Z0-9]+)")


@dataclass
class BidsScan:
    path: Path
    entities: dict[str, str]  # in file-name order
    suffix: str

    @property
    def subject(self) -> str:
        return self.entities["sub"]

    @property
    def folder(self) -> Path:
        """``sub-X/[ses-Y/]anat``, as in the input."""
        parts = [f"sub-{self.subject}"]
        if "ses" in self.entities:
            parts.append(f"ses-{self.entities['ses']}")
        return Path(*parts, "anat")

    def stem(self, with_space: bool = True) -> str:
        keys = [k for k in ENTITY_ORDER if k in self.entities and (with_space or k != "space")]
        return "_".join(f"{k}-{self.entities[k]}" for k in keys)

    def derivative(self, suffix: str, extension: str) -> Path:
        """``sub-X/[ses-Y/]anat/<entities>_desc-lesion_<suffix><extension>``."""
        return self.folder / f"{self.stem()}_desc-{DESC}_{suffix}{extension}"

    @property
    def report(self) -> Path:
        return Path(f"{self.stem(with_space=False)}.html")


def parse_name(name: str) -> tuple[dict[str, str], str, str] | None:
    """``sub-1_ses-2_T1w.nii.gz`` -> ({sub: 1, ses: 2}, "T1w", ".nii.gz"); None if not BIDS."""
    match = re.fullmatch(r"((?:[a-zA-Z]+-[a-zA-Z0-9]+_)+)([a-zA-Z0-9]+)(\.[a-z.]+)", name)
    if not match:
        return None
    pairs = _PAIR.findall(match.group(1))
    entities = dict(pairs)
    if len(entities) != len(pairs) or "sub" not in entities:
        return None
    return entities, match.group(2), match.group(3)


def participant_labels(labels: list[str] | None) -> set[str] | None:
    """BIDS-App ``--participant-label``: labels with or without the ``sub-`` prefix."""
    if not labels:
        return None
    return {label.removeprefix("sub-") for label in labels}


def find_scans(bids_dir: Path, suffix: str, labels: list[str] | None = None) -> list[BidsScan]:
    """Every ``sub-*/[ses-*/]anat/*_<suffix>.nii[.gz]`` of the chosen participants, sorted."""
    bids_dir = Path(bids_dir)
    if not (bids_dir / "dataset_description.json").is_file():
        raise StrokesegError(f"{bids_dir}: not a BIDS dataset (no dataset_description.json)")
    wanted = participant_labels(labels)
    scans = []
    for path in sorted(bids_dir.glob("sub-*/**/anat/*")):
        parsed = parse_name(path.name)
        if parsed is None or parsed[1] != suffix or parsed[2] not in (".nii", ".nii.gz"):
            continue
        entities = parsed[0]
        if wanted is None or entities["sub"] in wanted:
            scans.append(BidsScan(path, entities, suffix))
    if wanted:
        missing = wanted - {s.subject for s in scans}
        if missing:
            raise StrokesegError(
                f"{bids_dir}: no *_{suffix} scan for participant(s) "
                + ", ".join(f"sub-{m}" for m in sorted(missing))
            )
    if not scans:
        raise StrokesegError(f"{bids_dir}: no sub-*/[ses-*/]anat/*_{suffix}.nii[.gz] scans found")
    return scans


def dataset_description(bids_dir: Path, checkpoint: str) -> dict:
    return {
        "Name": "strokeseg lesion segmentations",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [
            {
                "Name": "strokeseg",
                "Version": __version__,
                "Description": f"lesion masks from checkpoint {checkpoint} (research use only)",
            }
        ],
        "SourceDatasets": [{"URL": Path(bids_dir).resolve().as_uri()}],
        "DatasetLinks": {"raw": Path(bids_dir).resolve().as_uri()},
    }


def territory_fields(result: ScanResult) -> dict:
    """The sidecar's vascular territories: the main one per lesion id, the scan's volume per
    territory and per hemisphere (mL), or why there are none."""
    if not result.on_template:
        return {"VascularTerritories": NOT_ON_TEMPLATE}
    fields: dict = {"VascularTerritoryAtlas": ATLAS_CITATION}
    fields["LesionTerritories"] = [les.territories.main()[0] for les in result.lesions]
    if result.lesions:
        total = combine([les.territories for les in result.lesions])
        voxel_ml = result.lesions[0].volume_ml / result.lesions[0].voxels
        fields["LesionVolumeByTerritoryML"] = {
            region_name(k): round(v * voxel_ml, 4) for k, v, _ in total.shares()
        }
        fields["LesionVolumeByHemisphereML"] = {
            "left": round(total.left * voxel_ml, 4),
            "right": round(total.right * voxel_ml, 4),
        }
    return fields


def mask_sidecar(
    scan: BidsScan,
    bids_dir: Path,
    checkpoint: str,
    threshold: float,
    result: ScanResult,
) -> dict:
    volumes_ml = [les.volume_ml for les in result.lesions]
    return {
        "Type": "Lesion",
        "Sources": [f"bids:raw:{scan.path.relative_to(bids_dir).as_posix()}"],
        "Checkpoint": checkpoint,
        "Threshold": threshold,
        "LesionVolumeML": round(sum(volumes_ml), 4),
        "LesionCount": len(volumes_ml),
        "LesionVolumesML": [round(v, 4) for v in volumes_ml],
        **territory_fields(result),
        "QualityWarnings": list(result.warnings),
    }


def probseg_sidecar(scan: BidsScan, bids_dir: Path, checkpoint: str, threshold: float) -> dict:
    return {
        "Sources": [f"bids:raw:{scan.path.relative_to(bids_dir).as_posix()}"],
        "Checkpoint": checkpoint,
        "Description": "lesion probability (mean over the checkpoints and flips), before the "
        "threshold and the minimum lesion size that make the mask",
        "Threshold": threshold,
    }


def dseg_tsv(count: int) -> str:
    """The look-up table of the lesion label image: index 1 is the largest lesion."""
    return "index\tname\n" + "".join(f"{i}\tlesion-{i}\n" for i in range(1, count + 1))


def to_json(data: dict) -> str:
    return json.dumps(data, indent=2) + "\n"


def output_paths(scan: BidsScan) -> dict[str, Path]:
    """Every file one scan adds to the derivatives dataset (relative to its root)."""
    itksnap, slicer = viewer_paths(scan.derivative("dseg", ".nii.gz"))
    return {
        "mask": scan.derivative("mask", ".nii.gz"),
        "sidecar": scan.derivative("mask", ".json"),
        "dseg": scan.derivative("dseg", ".nii.gz"),
        "lookup": scan.derivative("dseg", ".tsv"),
        "probseg": scan.derivative("probseg", ".nii.gz"),
        "probseg_sidecar": scan.derivative("probseg", ".json"),
        "itksnap": itksnap,
        "slicer": slicer,
        "report": scan.report,
        "summary": scan.folder / f"{scan.stem(with_space=False)}_summary.json",
    }
