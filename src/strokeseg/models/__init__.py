"""Segmentation networks, each registered by name. Importing this package registers them all."""

from __future__ import annotations

import copy
import math

import torch
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

__all__ = [
    "create_model",
    "create_on_meta",
    "deploy",
    "first_filters",
    "has_output_bias",
    "init_output_prior",
    "list_models",
    "register_model",
]


def create_on_meta(name: str, **kwargs) -> nn.Module:
    """:func:`create_model` on the meta device: the structure only, no memory or init cost."""
    with torch.device("meta"):
        return create_model(name, **kwargs)


def first_filters(network: nn.Module) -> int:
    """Filters of the network's first convolution (its full-resolution feature maps)."""
    return next(m.out_channels for m in network.modules() if isinstance(m, nn.Conv2d))


def _inference_network(model: nn.Module) -> nn.Module:
    return model.inference_network() if hasattr(model, "inference_network") else model


def deploy(model: nn.Module, level: int = 4) -> nn.Module:
    """The inference network alone, as an independent copy in eval mode.

    For a multi-task model this is the backbone with its mask head: no LFFGM, no edge head,
    the same state-dict keys and shapes as the single-task network. Deep-supervision heads
    (UNet++ X(0,1)..X(0,3)) are dropped as well. ``level`` 1-3 prunes a UNet++ trained with
    deep supervision to the nodes X(0, level) needs and its head (``models/pruned.py``).
    """
    if level != 4:
        from strokeseg.models.pruned import prune

        return prune(_inference_network(model), level)
    network = copy.deepcopy(_inference_network(model)).eval()
    if getattr(network, "ds_heads", None) is not None:
        network.ds_heads = None
    return network


def _output_layers(model: nn.Module) -> list[nn.Module]:
    """The mask head (``head`` of the inference network) and, if any, the edge head."""
    return [_inference_network(model).head] + (
        [model.edge_head] if hasattr(model, "edge_head") else []
    )


def has_output_bias(model: nn.Module) -> bool:
    """Whether every output layer has a bias :func:`init_output_prior` can set."""
    return all(layer.bias is not None for layer in _output_layers(model))


def init_output_prior(model: nn.Module, prior: float) -> None:
    """Start the output layers at probability ``prior``: bias = log(prior / (1 - prior)).

    The prior-probability initialisation of Lin et al. (Focal Loss, ICCV 2017). Lesion is
    a few percent of the pixels or less; from PyTorch's default init (p near 0.5) Adam at
    lr 1e-3 moves the logits slowly, so a short run ends under-confident with its lesion
    probabilities near 0.5 and broad false positives. Raises ``ValueError`` for a model
    whose output layer has no bias (Swin-Unet, as in its reference code).
    """
    if not 0.0 < prior < 1.0:
        raise ValueError(f"output prior {prior}: must be in (0, 1)")
    if not has_output_bias(model):
        raise ValueError(f"{type(model).__name__}'s output layer has no bias to set")
    for layer in _output_layers(model):
        nn.init.constant_(layer.bias, math.log(prior / (1.0 - prior)))
