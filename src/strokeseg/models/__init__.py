"""Segmentation networks, each registered by name. Importing this package registers them all."""

from __future__ import annotations

import copy

from torch import nn

from strokeseg.models import (  # noqa: F401  (registration)
    attention_unet,
    clcinet,
    deeplabv3plus,
    multitask,
    segnet,
    swin_unet,
    transunet,
    unet,
    unetpp,
    xnet,
)
from strokeseg.models.registry import create_model, list_models, register_model

__all__ = ["create_model", "deploy", "list_models", "register_model"]


def deploy(model: nn.Module) -> nn.Module:
    """The inference network alone, as an independent copy in eval mode.

    For a multi-task model this is the backbone with its mask head: no LFFGM, no edge head,
    the same state-dict keys and shapes as the single-task network.
    """
    net = model.inference_network() if hasattr(model, "inference_network") else model
    return copy.deepcopy(net).eval()
