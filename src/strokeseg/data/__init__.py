"""Everything between files on disk and 2D training batches (DESIGN.md section 3).

The cache module (torch, MONAI) is not imported here, so reading volumes stays light:
``from strokeseg.data.cache import SliceCache, SliceDataset``.
"""

from __future__ import annotations

from strokeseg.data.intensity import normalize
from strokeseg.data.io import Volume, load_mask, load_volume, save_like
from strokeseg.data.layouts import Dataset, Subject, find_dataset, load_subject
from strokeseg.data.slices import from_slices, to_slices
from strokeseg.data.splits import load_split, make_split, save_split

__all__ = [
    "Dataset",
    "Subject",
    "Volume",
    "find_dataset",
    "from_slices",
    "load_mask",
    "load_split",
    "load_subject",
    "load_volume",
    "make_split",
    "normalize",
    "save_like",
    "save_split",
    "to_slices",
]
