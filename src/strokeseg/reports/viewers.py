"""Colour tables that name each lesion of the label image in ITK-SNAP and 3D Slicer.

Beside ``<scan>_lesions.nii.gz``: ``<scan>_lesions.label.txt``, an ITK-SNAP label description
file (Segmentation > Import Label Descriptions), and ``<scan>_lesions.ctbl``, a 3D Slicer
colour table ("# Color table file" format: ``id name R G B A``, spaces in names written as
underscores, as Slicer requires). Each lesion is named ``lesion 1 (12.3 mL, MCA frontal
left)``, with its main vascular territory when the scan has one.
"""

from __future__ import annotations

from pathlib import Path

from strokeseg.reports.lesions import Lesion

PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (170, 110, 40),
)
"""Distinct colours (Sasha Trubetskoy's list), repeated after the twelfth lesion."""
ITKSNAP_HEADER = """################################################
# ITK-SnAP Label Description File
# File format:
# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL
# Fields:
#    IDX:   Zero-based index
#    -R-:   Red color component (0..255)
#    -G-:   Green color component (0..255)
#    -B-:   Blue color component (0..255)
#    -A-:   Label transparency (0.00 .. 1.00)
#    VIS:   Label visibility (0 or 1)
#    MSH:   Label mesh visibility (0 or 1)
#  LABEL:   Label description
################################################
"""


def lesion_name(lesion: Lesion) -> str:
    """``lesion 1 (12.3 mL, MCA frontal left)``; without the territory when there is none."""
    detail = f"{lesion.volume_ml:.1f} mL"
    if lesion.territories is not None:
        detail += f", {lesion.territories.main()[0]}"
    return f"lesion {lesion.id} ({detail})"


def colour(lesion_id: int) -> tuple[int, int, int]:
    return PALETTE[(lesion_id - 1) % len(PALETTE)]


def itksnap_labels(lesions: list[Lesion]) -> str:
    lines = [f'{0:5d} {0:5d} {0:4d} {0:4d} {0:8d} {0:2d} {0:2d}    "Clear Label"']
    for les in lesions:
        r, g, b = colour(les.id)
        lines.append(
            f'{les.id:5d} {r:5d} {g:4d} {b:4d} {1:8d} {1:2d} {1:2d}    "{lesion_name(les)}"'
        )
    return ITKSNAP_HEADER + "\n".join(lines) + "\n"


def slicer_colours(lesions: list[Lesion], path: Path) -> str:
    lines = [f"# Color table file {path.name}", f"# {len(lesions) + 1} values"]
    lines.append("0 Background 0 0 0 0")
    for les in lesions:
        r, g, b = colour(les.id)
        lines.append(f"{les.id} {lesion_name(les).replace(' ', '_')} {r} {g} {b} 255")
    return "\n".join(lines) + "\n"


def viewer_paths(labels: Path) -> tuple[Path, Path]:
    """(ITK-SNAP label file, Slicer colour table) beside the label image ``labels``."""
    stem = labels.name.removesuffix(".gz").removesuffix(".nii")
    return labels.with_name(f"{stem}.label.txt"), labels.with_name(f"{stem}.ctbl")
