"""Seeded subject-level splits, saved as JSON next to a run.

The paper's splits are counts: ATLAS R1.2 120/40/60 (train/val/test; 220 of the 229 scans) and
the CT cohort 40/0/5. Counts may add up to less than the number of subjects (the rest is left
out); fractions must add up to 1 (val and test are rounded, train gets the remainder).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from strokeseg.data.io import write_atomic
from strokeseg.data.layouts import mask_union
from strokeseg.errors import StrokesegError

PARTS = ("train", "val", "test")
PAPER_SPLITS = {"atlas": (120, 40, 60), "ct": (40, 0, 5)}


def _counts(n: int, sizes: tuple[int, ...] | tuple[float, ...]) -> tuple[int, int, int]:
    if len(sizes) != 3 or any(s < 0 for s in sizes):
        raise StrokesegError(f"split sizes {sizes}: expected three non-negative (train, val, test)")
    if all(isinstance(s, int | np.integer) for s in sizes):
        if sum(sizes) > n:
            raise StrokesegError(f"split sizes {sizes} need {sum(sizes)} subjects, found {n}")
        return tuple(int(s) for s in sizes)
    if abs(sum(sizes) - 1.0) > 1e-6:
        raise StrokesegError(f"split fractions {sizes} must add up to 1")
    val, test = round(sizes[1] * n), round(sizes[2] * n)
    return n - val - test, val, test


def make_split(
    ids: list[str],
    sizes: tuple[int, ...] | tuple[float, ...],
    seed: int,
    volumes: dict[str, float] | None = None,
) -> dict[str, list[str]]:
    """Cut the subject ids into train/val/test (each sorted), seeded.

    Without ``volumes`` the ids are shuffled; with them (lesion volume per id) the split is
    stratified by lesion volume (see the module docstring).
    """
    if len(set(ids)) != len(ids):
        raise StrokesegError("split: subject ids are not unique")
    rng = np.random.default_rng(seed)
    counts = _counts(len(ids), tuple(sizes))
    if volumes is None:
        order = rng.permutation(sorted(ids)).tolist()
        cuts = np.cumsum([0, *counts])
        return {part: sorted(order[cuts[i] : cuts[i + 1]]) for i, part in enumerate(PARTS)}
    ranked = sorted(ids, key=lambda i: (volumes[i], i))
    labels = _spread([*counts, len(ids) - sum(counts)])  # the 4th label: left out
    smallest = min((c for c in counts if c > 0), default=1)
    block = max(1, round(len(ids) / smallest))  # about one subject of the smallest part each
    for start in range(0, len(ids), block):
        labels[start : start + block] = rng.permutation(labels[start : start + block])
    return {
        part: sorted(i for i, label in zip(ranked, labels, strict=True) if label == k)
        for k, part in enumerate(PARTS)
    }


def _spread(counts: list[int]) -> np.ndarray:
    """A label sequence holding ``counts[k]`` times label k, each label evenly spaced: the
    next position goes to the label furthest behind its share."""
    counts = np.asarray(counts, dtype=float)
    n, given = int(counts.sum()), np.zeros(len(counts))
    labels = np.empty(n, dtype=int)
    for i in range(n):
        k = int(np.argmax(counts * (i + 1) / n - given))
        labels[i], given[k] = k, given[k] + 1
    return labels


def lesion_voxels(masks: list[Path]) -> int:
    """Voxels in the union of a subject's lesion masks (the stratification key)."""
    return int(mask_union(masks).sum(dtype=np.int64)) if masks else 0


def save_split(split: dict[str, list[str]], path: str | Path) -> Path:
    """Write the split as JSON atomically."""
    text = json.dumps({part: list(split[part]) for part in PARTS}, indent=2) + "\n"
    return write_atomic(path, text, overwrite=True)


def load_split(path: str | Path) -> dict[str, list[str]]:
    """Read a split written by :func:`save_split`; parts must be present and disjoint."""
    path = Path(path)
    try:
        split = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise StrokesegError(f"{path}: cannot read split ({error})") from None
    if not isinstance(split, dict) or any(not isinstance(split.get(p), list) for p in PARTS):
        raise StrokesegError(f"{path}: a split needs lists 'train', 'val' and 'test'")
    ids = [i for p in PARTS for i in split[p]]
    if len(set(ids)) != len(ids):
        raise StrokesegError(f"{path}: a subject appears in more than one part")
    return {p: split[p] for p in PARTS}
