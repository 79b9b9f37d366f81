"""How a scan becomes a network's input: described once, computed once.

:class:`Preprocessing` describes it (modality, CT window, 2.5D context, left-right mirror,
zeroing outside the crop, and the space of the training scans); a checkpoint records it with
the rest of its training data's description, :class:`TrainingData`
(``meta["data"]``: ``{"preprocessing": {...}, "layout", "fingerprint", "slice_grid"}``;
checkpoints written before kept the preprocessing keys flat in ``meta["data"]``, and
:meth:`TrainingData.from_meta` reads both). :func:`prepare` derives from one scan what the
slice cache, the slice engine, the quality checks and the report need: the normalised image,
the head mask, the crop's slice plan and the voxel spacing, each computed once (on first use).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

import numpy as np

from strokeseg.data.crop import SlicePlan, head_mask, inside, region_plan, template_brain
from strokeseg.data.intensity import normalize
from strokeseg.data.io import Volume
from strokeseg.data.mirror import with_mirror
from strokeseg.data.template import on_mni_grid


@dataclass(frozen=True)
class Preprocessing:
    """What the network expects of its input, as trained (the settings of ``data`` in the
    config that change the input, and the training scans' modality and space)."""

    modality: str = "mri"
    window: str = "brain"  # CT Hounsfield window (data/intensity.py)
    context_slices: int = 0  # 2.5D: k slices each side as channels
    mirror: bool = False  # the left-right mirror as more channels (data/mirror.py)
    zero_outside_crop: bool = False  # 0 outside the crop's boxes (data/crop.py)
    space: str = "unknown"  # "template" (the MNI152 grid), "native" or "unknown"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainingData:
    """A checkpoint's description of its training data (``meta["data"]``)."""

    preprocessing: Preprocessing
    layout: str | None = None
    fingerprint: dict | None = None  # data/fingerprint.py
    slice_grid: tuple[int, int] | None = None  # (H, W) of the training batches (inference/grid.py)

    def to_dict(self) -> dict[str, Any]:
        return {
            "preprocessing": self.preprocessing.to_dict(),
            "layout": self.layout,
            "fingerprint": self.fingerprint,
            "slice_grid": list(self.slice_grid) if self.slice_grid else None,
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> TrainingData:
        """The description in a checkpoint's ``meta``, of this version or an older one: flat
        preprocessing keys (without ``space``: "template" when it used the mirror, which only
        trains on that grid, else "unknown"), and no ``slice_grid`` (the config's patch size,
        if it trained on patches)."""
        data = meta.get("data") or {}
        if "preprocessing" in data:
            preprocessing = Preprocessing(**data["preprocessing"])
        else:
            mirror = bool(data.get("mirror", False))
            preprocessing = Preprocessing(
                modality=data.get("modality", "mri"),
                window=data.get("window", "brain"),
                context_slices=int(data.get("context_slices", 0)),
                mirror=mirror,
                zero_outside_crop=bool(data.get("zero_outside_crop", False)),
                space=str(data.get("space", "template" if mirror else "unknown")),
            )
        grid = data.get("slice_grid")
        if not grid:
            patch = ((meta.get("config") or {}).get("data") or {}).get("patch_size")
            grid = (patch, patch) if patch else None
        grid = (int(grid[0]), int(grid[1])) if grid else None
        return cls(preprocessing, data.get("layout"), data.get("fingerprint") or None, grid)


class PreparedScan:
    """One scan (RAS) under a :class:`Preprocessing`: its normalised image, and on first use its
    head mask, the crop's region and slice plan (data/crop.py) and the network's input."""

    def __init__(self, volume: Volume, preprocessing: Preprocessing):
        self.volume, self.preprocessing = volume, preprocessing
        self.image = normalize(volume.data, preprocessing.modality, preprocessing.window)

    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.volume.spacing

    @cached_property
    def on_template(self) -> bool:
        """Whether the scan lies on the MNI152 grid (data/template.py)."""
        return on_mni_grid(self.volume.data.shape, self.volume.affine)

    @cached_property
    def head(self) -> np.ndarray:
        """The head: the largest 26-connected component above the head threshold (crop.py)."""
        return head_mask(self.volume.data, self.preprocessing.modality, self.image)

    @cached_property
    def region(self) -> np.ndarray:
        """What the crop keeps (crop.py, rule 1): the template's brain on the MNI152 grid,
        else the head."""
        brain = template_brain() if self.on_template else None
        return self.head if brain is None else brain

    @cached_property
    def plan(self) -> SlicePlan:
        """The crop's slices and boxes around :attr:`region` (crop.py, rules 2-3)."""
        return region_plan(self.region, self.spacing)

    @cached_property
    def kept(self) -> np.ndarray:
        """Bool RAS mask of the voxels inside the crop's boxes."""
        return inside(self.plan)

    def network_input(self) -> np.ndarray:
        """The network's input volume(s): the image, 0 outside the crop's boxes with
        ``zero_outside_crop``, stacked with its left-right mirror with ``mirror``."""
        image = self.image
        if self.preprocessing.zero_outside_crop:
            image = image * self.kept
        return with_mirror(image, self.volume, self.preprocessing.mirror)


def prepare(volume: Volume, preprocessing: Preprocessing) -> PreparedScan:
    """``volume`` (RAS) as the network trained with ``preprocessing`` sees it."""
    return PreparedScan(volume, preprocessing)
