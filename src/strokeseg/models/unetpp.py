"""UNet++: the nested U-Net of Zhou et al., DLMIA 2018 (https://arxiv.org/abs/1807.10165).

Built as the official Keras ``Nest_Net`` (MrGiovanni/UNetPlusPlus, ``model_logic.py``):
filters (32, 64, 128, 256, 512), every node two 3x3 conv + ReLU each followed by dropout 0.5,
no normalisation, 2x2 max-pool down, 2x2 stride-2 transposed conv up, dense skips. Initialised
as that code: he_normal kernels on every conv (Keras' truncated normal), Keras' default
glorot_uniform on the transposed convs, zero biases. With 1 input and 1 output channel it has
exactly 9,041,601 parameters.

``padding="replicate"`` (not in the official code, which pads with zeros) makes every 3x3
convolution continue its input's edge instead. With zero padding the end of the input is an
edge the deep layers see tens of pixels away, so a network's answer depends on where its input
ends and the inference crop moves it (docs/performance.md); with replicate padding
a uniform region's edge is no edge.

``deep_supervision=True`` adds the original paper's extra 1x1 heads on X(0,1)..X(0,3): in
training ``forward`` then returns ``{"mask": X(0,4) head, "deep": [X(0,1), X(0,2), X(0,3)
heads]}``; in eval mode it returns the X(0,4) mask logits only, and :func:`strokeseg.deploy`
drops the extra heads, so the deployed network is exactly the plain UNet++.

Node X(i, j) sits at depth i (resolution 1/2**i) and column j; X(i, 0) is the backbone and
X(i, j>0) takes ``up(X(i+1, j-1))`` concatenated with X(i, 0..j-1). ``features`` is the
backbone contract of the multi-task wrapper (``models/multitask.py``): F_whole = X(0, 4), the
deepest map X(4, 0) and, in training with deep supervision, the extra heads' logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from strokeseg.models.blocks import require_multiple, scaled
from strokeseg.models.keras_layers import keras_init_
from strokeseg.models.registry import register_model

DEPTH = 5


def scaled_filters(width: float, base: int = 32) -> list[int]:
    """Channel widths per depth: ``base * 2**i`` scaled by ``width`` (at least 1 channel)."""
    return [scaled(base * 2**i, width) for i in range(DEPTH)]


class StandardUnit(nn.Sequential):
    """Two 3x3 convolutions with ReLU; dropout after each (original) or BatchNorm (``batch``).
    ``padding`` is the convolutions' ``padding_mode`` (``zeros`` or ``replicate``).

    Called with a list of maps (a dense skip), it convolves their concatenation. With
    replicate padding, eager inference (no gradient) builds each convolution's padded input
    in one copy (:func:`replicate_padded`: the concatenation and the edge in a buffer) instead
    of a ``torch.cat`` and a ``replication_pad2d``, which is slow on channels-last maps (the
    quarter-width scan 4.3 -> 3.6 s, docs/performance.md). Training keeps the plain ops (the
    buffer's backward costs a copy of it per write: 1.7 against 2.5 steps/s), and so do
    traced, exported and compiled graphs. Both give the same numbers (tested).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        norm: str = "none",
        dropout: float = 0.5,
        padding: str = "zeros",
    ):
        layers: list[nn.Module] = []
        for c_in in (in_ch, out_ch):
            layers.append(
                nn.Conv2d(c_in, out_ch, 3, padding=1, bias=norm == "none", padding_mode=padding)
            )
            if norm == "batch":
                layers += [nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]
            else:
                layers += [nn.ReLU(inplace=True), nn.Dropout(dropout)]
        super().__init__(*layers)
        self.replicate = padding == "replicate"

    def forward(self, x: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        parts = [x] if isinstance(x, torch.Tensor) else list(x)
        if not self.replicate or torch.is_grad_enabled() or _graph_capture():
            return super().forward(parts[0] if len(parts) == 1 else torch.cat(parts, dim=1))
        for layer in self:
            if isinstance(layer, nn.Conv2d):
                x = F.conv2d(replicate_padded(parts), layer.weight, layer.bias)
            else:
                x = layer(x)
            parts = [x]
        return x


def _graph_capture() -> bool:
    """Whether the network is being traced, exported or compiled (plain ops only then)."""
    return torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling()


def replicate_padded(parts: list[torch.Tensor]) -> torch.Tensor:
    """The channel concatenation of ``parts`` (B, C_k, H, W) padded by one pixel that repeats
    its edge: ``F.pad(torch.cat(parts, 1), (1, 1, 1, 1), mode="replicate")`` in one buffer,
    channels-last unless every part is contiguous (autograd flows through it)."""
    first = parts[0]
    b, _, h, w = first.shape
    channels_last = not all(p.is_contiguous() for p in parts)
    out = torch.empty(
        (b, sum(p.shape[1] for p in parts), h + 2, w + 2),
        dtype=first.dtype,
        device=first.device,
        memory_format=torch.channels_last if channels_last else torch.contiguous_format,
    )
    c = 0
    for part in parts:
        out[:, c : c + part.shape[1], 1:-1, 1:-1] = part
        c += part.shape[1]
    out[:, :, 0, 1:-1] = out[:, :, 1, 1:-1]
    out[:, :, -1, 1:-1] = out[:, :, -2, 1:-1]
    out[:, :, :, 0] = out[:, :, :, 1]
    out[:, :, :, -1] = out[:, :, :, -2]
    return out


class UNetPlusPlus(nn.Module):
    """UNet++ (L=4) with a 1x1 mask head on X(0, 4); forward returns mask logits."""

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        width: float = 1.0,
        norm: str = "none",
        dropout: float = 0.5,
        deep_supervision: bool = False,
        init: str = "keras",
        padding: str = "zeros",
    ):
        super().__init__()
        if norm not in ("none", "batch"):
            raise ValueError(f"norm must be 'none' or 'batch', got {norm!r}")
        if padding not in ("zeros", "replicate"):
            raise ValueError(f"padding must be 'zeros' or 'replicate', got {padding!r}")
        if init not in ("keras", "pytorch"):
            raise ValueError(f"init must be 'keras' or 'pytorch', got {init!r}")
        f = scaled_filters(width)
        self.filters = f
        self.pool = nn.MaxPool2d(2)
        nodes: dict[str, nn.Module] = {}
        ups: dict[str, nn.Module] = {}
        for i in range(DEPTH):
            nodes[f"x{i}_0"] = StandardUnit(
                in_channels if i == 0 else f[i - 1], f[i], norm, dropout, padding
            )
        for j in range(1, DEPTH):
            for i in range(DEPTH - j):
                ups[f"up{i}_{j}"] = nn.ConvTranspose2d(f[i + 1], f[i], 2, stride=2)
                nodes[f"x{i}_{j}"] = StandardUnit((j + 1) * f[i], f[i], norm, dropout, padding)
        self.nodes = nn.ModuleDict(nodes)
        self.ups = nn.ModuleDict(ups)
        self.head = nn.Conv2d(f[0], out_channels, 1)
        self.ds_heads = (
            nn.ModuleList(nn.Conv2d(f[0], out_channels, 1) for _ in range(DEPTH - 2))
            if deep_supervision
            else None
        )
        self.f_whole_channels = f[0]
        self.deepest_channels = f[-1]
        if init == "keras":  # the official code's; "pytorch" keeps PyTorch's defaults
            keras_init_(self)

    def grid(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """Every node: ``grid[i][j]`` is X(i, j). H and W must be multiples of 16."""
        require_multiple(x, 16, "UNet++")
        grid: list[list[torch.Tensor]] = [[] for _ in range(DEPTH)]
        for i in range(DEPTH):
            grid[i].append(self.nodes[f"x{i}_0"](x if i == 0 else self.pool(grid[i - 1][0])))
        for j in range(1, DEPTH):
            for i in range(DEPTH - j):
                up = self.ups[f"up{i}_{j}"](grid[i + 1][j - 1])
                grid[i].append(self.nodes[f"x{i}_{j}"]([*grid[i][:j], up]))
        return grid

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """The backbone contract: ``f_whole`` = X(0,4), ``deepest`` = X(4,0) and, in training
        with deep supervision, ``deep``: the mask logits of X(0,1)..X(0,3)."""
        grid = self.grid(x)
        features = {"f_whole": grid[0][DEPTH - 1], "deepest": grid[DEPTH - 1][0]}
        if self.ds_heads is not None and self.training:
            features["deep"] = [head(grid[0][j + 1]) for j, head in enumerate(self.ds_heads)]
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor | list]:
        features = self.features(x)
        mask = self.head(features["f_whole"])
        return {"mask": mask, "deep": features["deep"]} if "deep" in features else mask


@register_model("unetpp")
def unetpp(**kwargs) -> UNetPlusPlus:
    """Single-task UNet++ (Table 2, row 1): the network every multi-task variant deploys to."""
    return UNetPlusPlus(**kwargs)
