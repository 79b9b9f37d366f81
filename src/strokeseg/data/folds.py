"""K-fold cross-validation: subjects cut into K folds stratified by lesion volume, once per seed.

Fold I tests on fold I and trains on the other folds, less a validation share carved out of
them (stratified too), so over the K folds every subject is tested exactly once. The folds
depend only on the labelled subject ids, their lesion volumes, K and the seed, so every row of
a benchmark table (and every ``train --folds K --fold I`` call) gets the same folds: results
are paired per subject. They are saved as JSON beside the run or the benchmark.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from strokeseg.data.io import write_atomic
from strokeseg.data.splits import make_split
from strokeseg.errors import StrokesegError


def make_folds(ids: list[str], k: int, seed: int, volumes: dict[str, float]) -> list[list[str]]:
    """K disjoint folds (each sorted) covering ``ids``, stratified by lesion volume.

    The ids are ranked by volume and every run of K consecutive ids is dealt to the K folds in
    a seeded random order, so each fold holds one subject of every volume block and fold sizes
    differ by at most one.
    """
    if len(set(ids)) != len(ids):
        raise StrokesegError("folds: subject ids are not unique")
    if k < 2 or k > len(ids):
        raise StrokesegError(f"--folds {k}: need 2 <= K <= the {len(ids)} labelled subjects")
    rng = np.random.default_rng(seed)
    ranked = sorted(ids, key=lambda i: (volumes[i], i))
    labels = np.concatenate(
        [rng.permutation(k)[: len(ranked[s : s + k])] for s in range(0, len(ranked), k)]
    )
    return [
        sorted(i for i, label in zip(ranked, labels, strict=True) if label == f) for f in range(k)
    ]


def val_share(sizes: list[float] | tuple[float, ...]) -> float:
    """The validation share of the training folds, from ``data.split`` (train, val, test):
    val / (train + val), as fractions or counts (0.6/0.2/0.2 and 120/40/60 both give 0.25)."""
    train, val = float(sizes[0]), float(sizes[1])
    if train + val <= 0 or val < 0:
        raise StrokesegError(f"data.split {list(sizes)}: no training share for cross-validation")
    return val / (train + val)


def check_fold(folds: int | None, fold: int | None, *, every_fold: bool = False) -> None:
    """``--folds K --fold I``: both or neither, with I in 0..K-1; K alone where ``every_fold``
    (a benchmark then runs every fold)."""
    together = "give --folds K and --fold I together"
    if fold is None:
        if folds is not None and not every_fold:
            raise StrokesegError(f"--folds {folds} needs --fold I ({together})")
    elif folds is None:
        raise StrokesegError(f"--fold {fold} needs --folds K ({together})")
    elif not 0 <= fold < folds:
        raise StrokesegError(f"--fold {fold} must be in 0..{folds - 1} for --folds {folds}")


def fold_split(
    folds: list[list[str]], fold: int, share: float, seed: int, volumes: dict[str, float]
) -> dict[str, list[str]]:
    """train/val/test of fold ``fold``: test = that fold, val = ``share`` of the others."""
    check_fold(len(folds), fold)
    rest = sorted(i for f, ids in enumerate(folds) if f != fold for i in ids)
    if share <= 0:
        return {"train": rest, "val": [], "test": list(folds[fold])}
    split = make_split(rest, (1.0 - share, share, 0.0), seed, volumes)
    return {"train": split["train"], "val": split["val"], "test": list(folds[fold])}


def save_folds(folds: list[list[str]], seed: int, path: str | Path) -> Path:
    """Write the folds as JSON atomically (an existing file with other folds is refused)."""
    path = Path(path)
    if path.exists():
        if load_folds(path) != folds:
            raise StrokesegError(
                f"{path}: holds other folds (another dataset, K or seed); use another --out"
            )
        return path
    text = json.dumps({"k": len(folds), "seed": seed, "folds": folds}, indent=2) + "\n"
    return write_atomic(path, text, overwrite=True)


def load_folds(path: str | Path) -> list[list[str]]:
    """Read folds written by :func:`save_folds`; they must be disjoint lists of ids."""
    path = Path(path)
    try:
        folds = json.loads(path.read_text(encoding="utf-8"))["folds"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise StrokesegError(f"{path}: cannot read folds ({error})") from None
    if not isinstance(folds, list) or not all(isinstance(f, list) for f in folds):
        raise StrokesegError(f"{path}: 'folds' must be a list of lists of subject ids")
    ids = [i for f in folds for i in f]
    if len(set(ids)) != len(ids):
        raise StrokesegError(f"{path}: a subject appears in more than one fold")
    return folds
