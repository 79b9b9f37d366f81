"""Small building blocks shared by the convolutional baselines (U-Net, SegNet, Attention
U-Net, DeepLab v3+), so every baseline scales its widths and checks its input the same way."""

from __future__ import annotations

import torch
from torch import nn


def scaled(channels: int, width: float) -> int:
    """``channels * width`` rounded, at least 1: one rule for every baseline's ``width``."""
    return max(1, round(channels * width))


def require_multiple(x: torch.Tensor, multiple: int, model: str) -> None:
    """Raise ``ValueError`` unless H and W are multiples of ``multiple`` (``model`` names who)."""
    if x.shape[-2] % multiple or x.shape[-1] % multiple:
        raise ValueError(
            f"{model} needs H and W divisible by {multiple}, got {tuple(x.shape[-2:])}"
        )


class ConvBNReLU(nn.Sequential):
    """Conv (``same`` padding, optional dilation) + BatchNorm (optional) + ReLU."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        *,
        dilation: int = 1,
        bias: bool = True,
        batch_norm: bool = True,
    ):
        pad = dilation * (kernel_size // 2)
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel_size, padding=pad, dilation=dilation, bias=bias)
        ]
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_ch))
        layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DoubleConv(nn.Sequential):
    """The U-Net level: two 3x3 convolutions (with bias), each + BatchNorm (optional) + ReLU."""

    def __init__(self, in_ch: int, out_ch: int, batch_norm: bool = True):
        super().__init__(
            ConvBNReLU(in_ch, out_ch, batch_norm=batch_norm),
            ConvBNReLU(out_ch, out_ch, batch_norm=batch_norm),
        )
