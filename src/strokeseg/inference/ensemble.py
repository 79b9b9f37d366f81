"""Several checkpoints as one model: the fold models of a cross-validation, averaged.

As nnU-Net does with its five folds, an ensemble averages the members' lesion probabilities
(not their masks or logits) and thresholds the mean. A checkpoint argument may be a file or a
folder: a run folder (its ``best.ckpt``) or any folder above run folders, such as one row and
seed of a cross-validated benchmark (``OUT/<row>/seed0``: the ``best.ckpt`` of every fold).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from strokeseg.errors import StrokesegError
from strokeseg.inference.checkpoint import load_network


def checkpoint_files(items: Sequence[Path]) -> list[Path]:
    """The checkpoint files named by ``items`` (files, or folders searched for best.ckpt)."""
    files: list[Path] = []
    for item in items:
        item = Path(item)
        if item.is_dir():
            found = sorted(item.rglob("best.ckpt"))
            if not found:
                raise StrokesegError(f"{item}: no best.ckpt in this folder or below it")
            files += found
        else:
            files.append(item)  # load_network names a missing or unreadable file
    if len(set(files)) != len(files):
        raise StrokesegError(f"--checkpoint: a checkpoint is given twice ({files})")
    return files


def load_ensemble(items: Sequence[Path]) -> tuple[list[nn.Module], dict[str, Any], list[Path]]:
    """(networks, the first checkpoint's description, files): the members must have been
    trained on the same kind of data (modality and CT window), or their probabilities would
    not mean the same thing."""
    files = checkpoint_files(items)
    networks, metas = zip(*(load_network(f) for f in files), strict=True)
    first = metas[0]["data"]
    for path, meta in zip(files[1:], metas[1:], strict=True):
        for key, default in (("modality", "mri"), ("window", "brain")):
            if meta["data"].get(key, default) != first.get(key, default):
                raise StrokesegError(
                    f"{path}: {key} {meta['data'].get(key, default)!r} differs from "
                    f"{first.get(key, default)!r} of {files[0]}; an ensemble needs one kind of data"
                )
    return list(networks), metas[0], files
