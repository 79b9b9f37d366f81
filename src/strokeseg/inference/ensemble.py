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

import torch
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


SHARED = (("modality", "mri"), ("window", "brain"), ("context_slices", 0))
"""Data settings every member must share: one preprocessing feeds them all."""


def load_ensemble(items: Sequence[Path]) -> tuple[list[nn.Module], dict[str, Any], list[Path]]:
    """(networks, the ensemble's description, files). The members must share the input
    preprocessing (modality, CT window, 2.5D context), or one input could not feed them all.
    The description is the first member's; its post-processing rule is kept only when every
    member holds the same one (fold models tune their own, so an ensemble of them is scored
    at p >= 0.5 without one)."""
    files = checkpoint_files(items)
    networks, metas = zip(*(load_network(f) for f in files), strict=True)
    first = metas[0]["data"]
    for path, meta in zip(files[1:], metas[1:], strict=True):
        for key, default in SHARED:
            if meta["data"].get(key, default) != first.get(key, default):
                raise StrokesegError(
                    f"{path}: {key} {meta['data'].get(key, default)!r} differs from "
                    f"{first.get(key, default)!r} of {files[0]}; an ensemble needs one "
                    "preprocessing"
                )
    meta = dict(metas[0])
    if any(m.get("postprocess") != meta.get("postprocess") for m in metas[1:]):
        meta.pop("postprocess", None)
    return list(networks), meta, files


class Ensemble(nn.Module):
    """Several deployed networks as one: its output is the logit of the members' mean lesion
    probability, so p >= 0.5 of the mean is ``output >= 0``, as for a single network, and any
    code that runs one network (predict, evaluate, the slice engine) runs the ensemble."""

    def __init__(self, networks: Sequence[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(networks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.stack([torch.sigmoid(m(x).float()) for m in self.members]).mean(dim=0)
        return torch.logit(p)  # +-inf where every member is certain; the threshold still holds


def load_model(items: Sequence[Path]) -> tuple[nn.Module, dict[str, Any], list[Path]]:
    """(the network of one checkpoint or the :class:`Ensemble` of several, the description as
    :func:`load_ensemble` gives it, the checkpoint files)."""
    networks, meta, files = load_ensemble(items)
    network = networks[0] if len(networks) == 1 else Ensemble(networks).eval()
    return network, meta, files
