"""Reading user-provided weights into a model (a plain state dict or a strokeseg checkpoint).

Below training and inference, which both use it: training starts from ``model.weights``,
inference rebuilds the deployed network from a checkpoint's state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from strokeseg.errors import StrokesegError


def model_state(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The network's own state dict out of a Lightning checkpoint (``model.`` prefix removed)."""
    prefix = "model."
    return {
        k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)
    }


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
