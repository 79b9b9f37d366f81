"""Rebuild the deployed network from a self-describing checkpoint (no Lightning import)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from strokeseg.errors import StrokesegError
from strokeseg.models import create_model, deploy


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


def model_state(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The network's own state dict out of a Lightning checkpoint (``model.`` prefix removed)."""
    prefix = "model."
    return {
        k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)
    }


def load_network(path: str | Path, level: int = 4) -> tuple[nn.Module, dict[str, Any]]:
    """The deployed inference network in eval mode, and the checkpoint's description.

    ``level`` 1-3 prunes a UNet++ trained with deep supervision (:func:`deploy`).
    """
    checkpoint = read_checkpoint(path)
    meta = checkpoint["strokeseg"]
    model = create_model(meta["model_name"], **meta["model_kwargs"])
    model.load_state_dict(model_state(checkpoint), strict=True)
    try:
        return deploy(model, level), meta
    except ValueError as error:
        raise StrokesegError(f"{path}: {error}") from None


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Initialise ``model`` from user-provided weights, strictly.

    ``path`` holds a plain state dict (``torch.save(model.state_dict())``) or a strokeseg
    checkpoint. Weights of the single-task network also initialise the backbone of a
    multi-task model (its LFFGM and edge head keep their random initialisation).
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise StrokesegError(f"{path}: weights file not found") from None
    except Exception as error:
        raise StrokesegError(
            f"{path}: not a readable weights file ({type(error).__name__})"
        ) from None
    if isinstance(state, dict) and "strokeseg" in state:
        state = model_state(state)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise StrokesegError(f"{path}: not a state dict of tensors")
    target = model
    if set(state) != set(model.state_dict()) and hasattr(model, "inference_network"):
        target = model.inference_network()
    try:
        target.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise StrokesegError(f"{path}: weights do not fit the model ({first})") from None
    return model
