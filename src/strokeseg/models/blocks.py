"""Small building blocks shared by the convolutional baselines (U-Net, SegNet, Attention
U-Net, DeepLab v3+), so every baseline scales its widths and checks its input the same way."""

from __future__ import annotations

import torch
from torch import nn

from strokeseg.models.keras_layers import SameConv2d, keras_bn


def scaled(channels: int, width: float, multiple: int = 1) -> int:
    """``channels * width`` rounded to a multiple of ``multiple`` (attention heads), at least
    one multiple: one rule for every model's ``width``."""
    return multiple * max(1, round(channels * width / multiple))


def require_multiple(x: torch.Tensor, multiple: int, model: str) -> None:
    """Raise ``ValueError`` unless H and W are multiples of ``multiple`` (``model`` names who)."""
    if x.shape[-2] % multiple or x.shape[-1] % multiple:
        raise ValueError(
            f"{model} needs H and W divisible by {multiple}, got {tuple(x.shape[-2:])}"
        )


class ConvBNReLU(nn.Sequential):
    """Conv (``same`` padding, optional stride and dilation) + BatchNorm (optional) + ReLU.

    ``keras=True`` gives the Keras baselines' layer (X-Net, CLCI-Net): TF ``'same'`` padding
    (asymmetric when kernel minus stride is odd) and Keras' BatchNorm defaults.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        *,
        dilation: int = 1,
        bias: bool = True,
        batch_norm: bool = True,
        keras: bool = False,
    ):
        if keras:
            conv: nn.Module = SameConv2d(
                in_ch, out_ch, kernel_size, stride, dilation=dilation, bias=bias
            )
        else:
            pad = dilation * (kernel_size // 2)
            conv = nn.Conv2d(
                in_ch, out_ch, kernel_size, stride, padding=pad, dilation=dilation, bias=bias
            )
        layers: list[nn.Module] = [conv]
        if batch_norm:
            layers.append(keras_bn(out_ch) if keras else nn.BatchNorm2d(out_ch))
        layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DoubleConv(nn.Sequential):
    """The U-Net level: two 3x3 convolutions (with bias), each + BatchNorm (optional) + ReLU
    (``keras=True``: CLCI-Net's Keras ``conv_2``)."""

    def __init__(self, in_ch: int, out_ch: int, batch_norm: bool = True, *, keras: bool = False):
        super().__init__(
            ConvBNReLU(in_ch, out_ch, batch_norm=batch_norm, keras=keras),
            ConvBNReLU(out_ch, out_ch, batch_norm=batch_norm, keras=keras),
        )
