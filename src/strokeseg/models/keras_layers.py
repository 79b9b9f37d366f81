"""Keras 2.x layer semantics in PyTorch, for the Keras baselines (X-Net, CLCI-Net).

Three things differ from PyTorch defaults and matter for a faithful port:
``padding='same'`` is asymmetric when the kernel minus the stride is odd (TF pads the extra row
and column at the bottom/right), ``BatchNormalization`` uses eps 1e-3 and momentum 0.99 (PyTorch
momentum 0.01), and ``he_normal`` draws from a normal truncated at two standard deviations.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SameConv2d(nn.Conv2d):
    """Conv2d with TF ``'same'`` padding (for inputs whose size is a multiple of the stride)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, **kwargs):
        dilation = kwargs.get("dilation", 1)
        total = max((kernel_size - 1) * dilation + 1 - stride, 0)
        self.tf_pad = (total // 2, total - total // 2)
        symmetric = self.tf_pad[0] == self.tf_pad[1]
        padding = self.tf_pad[0] if symmetric else 0
        super().__init__(in_ch, out_ch, kernel_size, stride, padding=padding, **kwargs)
        self.asymmetric = not symmetric

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.asymmetric:
            before, after = self.tf_pad
            x = F.pad(x, (before, after, before, after))
        return super().forward(x)


def keras_bn(channels: int) -> nn.BatchNorm2d:
    """BatchNorm2d with the Keras defaults (eps 1e-3, moving-average momentum 0.99)."""
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


def keras_init_(module: nn.Module) -> None:
    """Keras defaults of a model built with ``kernel_initializer='he_normal'`` on its Conv2D
    layers (UNet++'s ``Nest_Net``): he_normal convs, glorot_uniform transposed convs (Keras'
    default initializer), zero biases."""
    he_normal_(module)
    for m in module.modules():
        if isinstance(m, nn.ConvTranspose2d):
            # Keras' glorot_uniform fans: receptive field x input / output channels
            fan_in = m.weight[0, 0].numel() * m.in_channels
            fan_out = m.weight[0, 0].numel() * m.out_channels
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            nn.init.uniform_(m.weight, -limit, limit)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def he_normal_(module: nn.Module) -> None:
    """Keras ``he_normal`` on every conv kernel (truncated at 2 sd), zero biases, in place."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.weight[0].numel() * m.groups  # Keras: a depthwise kernel's fan-in is 9*C
            std = math.sqrt(2.0 / fan_in) / 0.87962566103423978  # Keras' truncation correction
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
