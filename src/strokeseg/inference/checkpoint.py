"""Rebuild the deployed network from a self-describing checkpoint (no Lightning import)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from strokeseg.data.preprocessing import TrainingData
from strokeseg.errors import StrokesegError
from strokeseg.models import create_model, deploy
from strokeseg.models.weights import model_state


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dictionary, loaded with ``weights_only=True`` (no arbitrary pickles)."""
    path = Path(path)
    if not path.is_file():
        raise StrokesegError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises many types for a corrupt or foreign file
        raise StrokesegError(
            f"{path}: not a readable checkpoint (not a PyTorch file, truncated, or holding "
            "objects other than tensors and plain data)"
        ) from None
    if not isinstance(checkpoint, dict) or "strokeseg" not in checkpoint:
        raise StrokesegError(f"{path}: not a strokeseg checkpoint (no model description)")
    return checkpoint


def load_network(path: str | Path, level: int = 4) -> tuple[nn.Module, dict[str, Any]]:
    """The deployed inference network in eval mode, and the checkpoint's description, its
    ``data`` read as a :class:`TrainingData` (of this version or an older one).

    ``level`` 1-3 prunes a UNet++ trained with deep supervision (:func:`deploy`).
    """
    checkpoint = read_checkpoint(path)
    meta = checkpoint["strokeseg"]
    try:
        meta = {**meta, "data": TrainingData.from_meta(meta)}
    except (TypeError, ValueError, IndexError):
        raise StrokesegError(f"{path}: unreadable training data description") from None
    model = create_model(meta["model_name"], **meta["model_kwargs"])
    model.load_state_dict(model_state(checkpoint), strict=True)
    try:
        return deploy(model, level), meta
    except ValueError as error:
        raise StrokesegError(f"{path}: {error}") from None


def input_channels(meta: dict[str, Any]) -> int:
    """The deployed network's input channels, as its checkpoint records them (2k+1 for 2.5D)."""
    return int(meta.get("model_kwargs", {}).get("in_channels", 1))
