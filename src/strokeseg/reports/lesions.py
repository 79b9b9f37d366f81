"""The per-lesion table: one row per 26-connected lesion, ids sorted by volume.

Coordinates are world (scanner) millimetres, x to the subject's right, y anterior, z superior
(NIfTI RAS+), taken from the image affine. On the MNI152 grid of ATLAS R2.0 (197x233x189,
1 mm) the world coordinates are MNI coordinates and are reported as such; elsewhere they are
not, and the MNI columns stay empty. The hemisphere is the side of the mid-sagittal plane
that holds at least 80 % of the lesion's voxels ("both" otherwise): x = 0 on the MNI grid, the
head's centre of mass otherwise (an estimate; it assumes the head is roughly centred).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from strokeseg.data.components import component_sizes, label_lesions
from strokeseg.data.preprocessing import PreparedScan

if TYPE_CHECKING:
    from strokeseg.reports.territories import LesionTerritories

SIDE_FRACTION = 0.8
CSV_FIELDS = (
    "scan",
    "lesion_id",
    "volume_ml",
    "voxels",
    "centroid_x_mm",
    "centroid_y_mm",
    "centroid_z_mm",
    "mni_x_mm",
    "mni_y_mm",
    "mni_z_mm",
    "hemisphere",
    "axial_slice_first",
    "axial_slice_last",
    "mean_probability",
    "territory",
    "territory_percent",
)


@dataclass
class Lesion:
    id: int
    voxels: int
    volume_ml: float
    centroid_mm: tuple[float, float, float]  # world (scanner) RAS mm
    mni_mm: tuple[float, float, float] | None  # only with a map to the template
    hemisphere: str  # "left" | "right" | "both"
    axial_slices: tuple[int, int]  # first and last axial slice (RAS voxel index k)
    mean_probability: float
    territories: LesionTerritories | None = None  # only with template coordinates

    def territory(self) -> list[str]:
        """The CSV's territory cells: the main territory and its share (%), or blanks."""
        if self.territories is None:
            return ["", ""]
        name, percent = self.territories.main()
        return [name, f"{percent:.2f}"]


def midline_x(scan: PreparedScan) -> float:
    """World x (mm) of the mid-sagittal plane: 0 on the MNI grid, else the head's centroid."""
    if scan.on_template:
        return 0.0
    head = scan.head if scan.head.any() else np.ones(scan.head.shape, dtype=bool)
    centre = np.asarray(ndimage.center_of_mass(head))
    affine = scan.volume.affine
    return float(affine[0, :3] @ centre + affine[0, 3])


def relabel_by_size(mask: np.ndarray) -> np.ndarray:
    """26-connected lesion labels renumbered so that 1 is the largest (ties: scan order)."""
    labels, count = label_lesions(mask)
    if count == 0:
        return labels.astype(np.int32)
    sizes = component_sizes(labels, count)[1:]
    order = np.argsort(-sizes, kind="stable")  # old label - 1, largest first
    lookup = np.zeros(count + 1, dtype=np.int32)
    lookup[order + 1] = np.arange(1, count + 1, dtype=np.int32)
    return lookup[labels]


def lesion_table(
    labels: np.ndarray,
    probability: np.ndarray,
    affine_ras: np.ndarray,
    *,
    midline_mm: float = 0.0,
    to_template: np.ndarray | None = None,
) -> list[Lesion]:
    """One row per label 1..N of ``labels`` (RAS voxel order), in label order. With
    ``to_template`` (RAS voxels to template mm), the centroids in MNI mm, and the hemisphere
    by template x (midline x = 0) instead of ``midline_mm`` in the scan's world."""
    labels = np.asarray(labels)
    count = int(labels.max()) if labels.size else 0
    if count == 0:
        return []
    ids = np.arange(1, count + 1)
    voxel_mm3 = float(abs(np.linalg.det(affine_ras[:3, :3])))
    sizes = component_sizes(labels, count)[1:]
    centres = np.asarray(ndimage.center_of_mass(labels > 0, labels, ids)).reshape(count, 3)
    world = centres @ affine_ras[:3, :3].T + affine_ras[:3, 3]
    means = ndimage.mean(np.asarray(probability, dtype=np.float64), labels, ids)
    where = np.nonzero(labels)
    which = labels[where]
    side_map, midline = (affine_ras, midline_mm) if to_template is None else (to_template, 0.0)
    x_world = np.stack(where, axis=1) @ side_map[0, :3] + side_map[0, 3]
    right = np.bincount(which, weights=x_world > midline, minlength=count + 1)[1:] / sizes
    mni = None if to_template is None else centres @ to_template[:3, :3].T + to_template[:3, 3]
    first = ndimage.minimum(where[2], which, ids)
    last = ndimage.maximum(where[2], which, ids)
    rows = []
    for i in range(count):
        side = "both"
        if right[i] >= SIDE_FRACTION or right[i] <= 1 - SIDE_FRACTION:
            side = "right" if right[i] >= SIDE_FRACTION else "left"
        rows.append(
            Lesion(
                id=i + 1,
                voxels=int(sizes[i]),
                volume_ml=float(sizes[i]) * voxel_mm3 / 1000.0,
                centroid_mm=tuple(float(v) for v in world[i]),
                mni_mm=None if mni is None else tuple(float(v) for v in mni[i]),
                hemisphere=side,
                axial_slices=(int(first[i]), int(last[i])),
                mean_probability=float(means[i]),
            )
        )
    return rows


def lesions_csv(tables: list[tuple[str, list[Lesion]]]) -> str:
    """``lesions_by_lesion.csv``: one row per lesion of every scan (mm and mL at 0.01/0.0001)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for scan, lesions in tables:
        for les in lesions:
            mni = [f"{v:.2f}" for v in les.mni_mm] if les.mni_mm else ["", "", ""]
            writer.writerow(
                [scan, les.id, f"{les.volume_ml:.4f}", les.voxels]
                + [f"{v:.2f}" for v in les.centroid_mm]
                + mni
                + [les.hemisphere, *les.axial_slices, f"{les.mean_probability:.4f}"]
                + les.territory()
            )
    return buffer.getvalue()
