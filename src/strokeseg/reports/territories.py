"""Vascular territories of each lesion, from the Arterial Atlas (Liu et al., Sci Data 2023).

The atlas (``strokeseg/data/atlases``, with its licence and attribution) labels 32 arterial
territories in 1 mm MNI space. A lesion voxel is looked up by its WORLD coordinates: the
nearest atlas voxel to the voxel's position in template (MNI) millimetres, so a scan on an
MNI-registered grid works whatever its storage order; voxels that fall on no territory count
as "outside atlas". The hemisphere of a voxel is the sign of its template x (x < 0 left).

Scans on the MNI152 template grid have template coordinates as they are; a native scan that
``predict`` registered to the template gets them through its registration (both:
``inference/native.py: template_map``).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import as_file, files

import nibabel as nib
import numpy as np

from strokeseg.reports import html

ATLAS = "ArterialAtlas136"
ATLAS_CITATION = (
    "Arterial Atlas: Liu et al., Digital 3D brain MRI arterial territories atlas, Sci Data 2023"
)
OUTSIDE = "outside atlas"
NOT_ON_TEMPLATE = (
    "territories need a map from the scan to the MNI152 template: a scan on the template "
    "grid, or one registered to it (a template-space checkpoint, --register)"
)
_SHORT = {
    "anterior cerebral artery": "ACA",
    "middle cerebral artery": "MCA",
    "posterior cerebral artery": "PCA",
    "anteior": "anterior",  # typos of the atlas's table
    "thalamoperfurators": "thalamoperforators",
}


@dataclass(frozen=True)
class Territory:
    id: int
    abbreviation: str  # the atlas's, with R for the right-sided ones it spells with L
    name: str  # the atlas's own name
    short: str  # e.g. "MCA frontal left"
    side: str  # "left" | "right"


def short_name(name: str) -> tuple[str, str]:
    """("MCA frontal left", "left") from "frontal pars of middle cerebral artery left"."""
    base, side = name.rsplit(" ", 1)
    for long, short in _SHORT.items():
        base = base.replace(long, short)
    base = re.sub(r"^(\w+) pars of (.+)$", r"\2 \1", base)
    return f"{base} {side}", side


def read_table(text: str) -> dict[int, Territory]:
    """The atlas's ``id|abbreviation|name|group`` lines; left/right from the name."""
    table = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        number, abbreviation, name, _ = line.split("|")
        short, side = short_name(name)
        if side not in ("left", "right"):
            raise ValueError(f"{ATLAS}.txt: territory {number} names no side: {name}")
        if side == "right" and abbreviation.endswith("L"):
            abbreviation = abbreviation[:-1] + "R"
        table[int(number)] = Territory(int(number), abbreviation, name, short, side)
    return table


@lru_cache(maxsize=1)
def territories() -> dict[int, Territory]:
    return read_table((files("strokeseg.data") / "atlases" / f"{ATLAS}.txt").read_text("utf-8"))


@lru_cache(maxsize=1)
def atlas_image() -> tuple[np.ndarray, np.ndarray]:
    """(territory ids as stored, the atlas's voxel-to-MNI-mm affine)."""
    with as_file(files("strokeseg.data") / "atlases" / f"{ATLAS}.nii.gz") as path:
        image = nib.load(path)
        return np.asarray(image.dataobj, dtype=np.int16), image.affine


def region_name(territory_id: int) -> str:
    """A territory's short name; 0 is "outside atlas"."""
    return territories()[territory_id].short if territory_id else OUTSIDE


def atlas_ids(world_mm: np.ndarray) -> np.ndarray:
    """Territory id (0 outside every territory) at each (N, 3) MNI position, nearest voxel."""
    data, affine = atlas_image()
    inverse = np.linalg.inv(affine)
    index = np.rint(world_mm @ inverse[:3, :3].T + inverse[:3, 3]).astype(np.int64)
    inside = np.all((index >= 0) & (index < data.shape), axis=1)
    ids = np.zeros(len(world_mm), dtype=np.int64)
    ids[inside] = data[tuple(index[inside].T)]
    return ids


@dataclass
class LesionTerritories:
    """Voxels of one lesion (or of a scan's lesions) per territory and per hemisphere."""

    voxels: dict[int, int]  # territory id (0: outside atlas) -> voxels, ids with voxels only
    left: int  # voxels at template x < 0
    right: int

    @property
    def total(self) -> int:
        return sum(self.voxels.values())

    def main(self) -> tuple[str, float]:
        """The territory holding most voxels (ties: the lowest id) and its share in %."""
        best = min(self.voxels, key=lambda k: (-self.voxels[k], k))
        return region_name(best), 100.0 * self.voxels[best] / self.total

    def shares(self) -> list[tuple[int, int, float]]:
        """(territory id, voxels, % of the total), largest first (ties: the lowest id)."""
        order = sorted(self.voxels, key=lambda k: (-self.voxels[k], k))
        return [(k, self.voxels[k], 100.0 * self.voxels[k] / self.total) for k in order]


def lesion_territories(labels: np.ndarray, to_template: np.ndarray) -> list[LesionTerritories]:
    """Territories of lesions 1..N of ``labels`` (RAS voxel order), ``to_template`` mapping
    its voxel indices to MNI mm (``inference/native.py: template_map``)."""
    count = int(labels.max()) if labels.size else 0
    where = np.nonzero(labels)
    which = labels[where].astype(np.int64)
    world = np.stack(where, axis=1) @ to_template[:3, :3].T + to_template[:3, 3]
    n = len(territories()) + 1
    table = np.bincount(which * n + atlas_ids(world), minlength=(count + 1) * n)
    table = table.reshape(count + 1, n)
    left = np.bincount(which, weights=world[:, 0] < 0, minlength=count + 1)
    rows = []
    for i in range(1, count + 1):
        voxels = {int(k): int(table[i, k]) for k in np.flatnonzero(table[i])}
        rows.append(LesionTerritories(voxels, int(left[i]), int(table[i].sum() - left[i])))
    return rows


def combine(parts: list[LesionTerritories]) -> LesionTerritories:
    """The voxels of several lesions together (a scan's totals)."""
    voxels: dict[int, int] = {}
    for part in parts:
        for k, v in part.voxels.items():
            voxels[k] = voxels.get(k, 0) + v
    return LesionTerritories(
        dict(sorted(voxels.items())), sum(p.left for p in parts), sum(p.right for p in parts)
    )


CSV_FIELDS = (
    "scan",
    "lesion_id",
    "kind",
    "region",
    "abbreviation",
    "voxels",
    "volume_ml",
    "percent",
)


def _rows(scan: str, lesion_id: str, part: LesionTerritories, voxel_ml: float) -> list[list]:
    """One scan's or lesion's rows: its territories, largest first, then its hemispheres."""
    rows = []
    for k, voxels, percent in part.shares():
        abbreviation = territories()[k].abbreviation if k else ""
        rows.append([scan, lesion_id, "territory", region_name(k), abbreviation, voxels])
        rows[-1] += [f"{voxels * voxel_ml:.4f}", f"{percent:.2f}"]
    for side, voxels in (("left", part.left), ("right", part.right)):
        percent = 100.0 * voxels / part.total
        rows.append([scan, lesion_id, "hemisphere", side, "", voxels])
        rows[-1] += [f"{voxels * voxel_ml:.4f}", f"{percent:.2f}"]
    return rows


def territories_csv(scans: list[tuple[str, list, bool]]) -> str:
    """``territories.csv``: per (scan, lesions, on template) the rows of every lesion, then
    the scan's totals (lesion_id ``all``); one ``none`` row for a scan off the template."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for scan, lesions, on_template in scans:
        if not on_template:
            writer.writerow([scan, "", "none", NOT_ON_TEMPLATE, "", "", "", ""])
            continue
        for les in lesions:
            writer.writerows(_rows(scan, str(les.id), les.territories, les.volume_ml / les.voxels))
        if lesions:
            total = combine([les.territories for les in lesions])
            voxel_ml = lesions[0].volume_ml / lesions[0].voxels
            writer.writerows(_rows(scan, "all", total, voxel_ml))
    return buffer.getvalue()


def section(lesions: list, on_template: bool) -> str:
    """The report's territory table: the scan's lesion volume per territory and hemisphere."""
    if not on_template:
        return f"<p>No vascular territories: {html.escape(NOT_ON_TEMPLATE)}.</p>"
    if not lesions:
        return "<p>No lesion in the mask.</p>"
    total = combine([les.territories for les in lesions])
    voxel_ml = lesions[0].volume_ml / lesions[0].voxels
    rows = [
        [region_name(k), f"{voxels * voxel_ml:.3f}", f"{percent:.1f}"]
        for k, voxels, percent in total.shares()
    ]
    rows += [
        [f"{side} hemisphere", f"{voxels * voxel_ml:.3f}", f"{100.0 * voxels / total.total:.1f}"]
        for side, voxels in (("left", total.left), ("right", total.right))
    ]
    headers = ("territory", "lesion volume (mL)", "% of lesion volume")
    return (
        html.table(headers, rows, numeric=(1, 2))
        + f'<p class="small">{html.escape(ATLAS_CITATION)}; each voxel looked up at its MNI '
        "position (nearest atlas voxel); hemisphere by the sign of MNI x (x &lt; 0 left).</p>"
    )
