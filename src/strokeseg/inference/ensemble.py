"""Several checkpoints as one model: the fold models of a cross-validation, averaged.

As nnU-Net does with its five folds, an ensemble averages the members' lesion probabilities
(not their masks or logits) and thresholds the mean; the slice engine does the averaging
(:meth:`strokeseg.inference.engine.Predictor.probabilities` over several networks). A checkpoint
argument may be a file or a folder: a run folder (its ``best.ckpt``) or any folder above run
folders, such as one row and seed of a cross-validated benchmark (``OUT/<row>/seed0``: the
``best.ckpt`` of every fold).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from strokeseg.errors import StrokesegError
from strokeseg.inference.checkpoint import load_network
from strokeseg.inference.engine import Predictor
from strokeseg.inference.options import InferenceOptions


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


SHARED = ("modality", "window", "context_slices", "mirror", "zero_outside_crop")
"""Preprocessing every member must share: one input feeds them all."""


def load_ensemble(
    items: Sequence[Path], level: int = 4
) -> tuple[list[nn.Module], dict[str, Any], list[Path]]:
    """(networks, the ensemble's description, files); ``level`` 1-3 prunes each member, a
    UNet++ trained with deep supervision (:func:`strokeseg.deploy`). The members must share
    the input preprocessing (modality, CT window, 2.5D context, mirror), or one input could
    not feed them all.
    The description is the first member's. Its post-processing rule is the members' one when
    they share it; fold models tune their own, so when every member holds a rule and they
    differ, the ensemble takes the median threshold and the median minimum lesion volume
    (:func:`consensus_rule`), and without a rule on every member it has none (p >= 0.5)."""
    files = checkpoint_files(items)
    networks, metas = zip(*(load_network(f, level) for f in files), strict=True)
    first = metas[0]["data"].preprocessing
    for path, meta in zip(files[1:], metas[1:], strict=True):
        for key in SHARED:
            value = getattr(meta["data"].preprocessing, key)
            if value != getattr(first, key):
                raise StrokesegError(
                    f"{path}: {key} {value!r} differs from {getattr(first, key)!r} of "
                    f"{files[0]}; an ensemble needs one preprocessing"
                )
    meta = dict(metas[0])
    rules = [m.get("postprocess") for m in metas]
    if any(rule != rules[0] for rule in rules[1:]):
        if all(rules):
            meta["postprocess"] = consensus_rule(rules)
        else:
            meta.pop("postprocess", None)
    return list(networks), meta, files


def consensus_rule(rules: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One post-processing rule for members that tuned their own: the median of their
    thresholds and of their minimum lesion volumes (each chosen on the member's own
    validation subjects; no subject is left for the ensemble to tune on)."""
    return {
        "threshold": float(np.median([r["threshold"] for r in rules])),
        "min_lesion_mm3": float(np.median([r["min_lesion_mm3"] for r in rules])),
        "objective": f"median of {len(rules)} members' rules",
    }


def load_predictor(
    items: Sequence[Path], options: InferenceOptions | None = None
) -> tuple[Predictor, list[Path]]:
    """(a :class:`strokeseg.inference.engine.Predictor` over the checkpoints named by
    ``items``, pruned at ``options.level``, which averages their probabilities; the files).
    One checkpoint is an ensemble of one. The one way to load checkpoints for inference."""
    options = options or InferenceOptions()
    networks, meta, files = load_ensemble(items, options.level)
    return Predictor(networks, meta, options), files
