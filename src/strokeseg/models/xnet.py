"""X-Net: Qi et al., "X-Net: Brain Stroke Lesion Segmentation Based on Depthwise Separable
Convolution and Long-range Dependencies", MICCAI 2019 (https://arxiv.org/abs/1907.07000).

Follows the official Keras code (Andrewsher/X-Net, ``model.py`` and ``FSM.py``): a U-shaped
network of X-blocks (three depthwise-separable conv units plus a 1x1 residual branch, added with
no activation after the sum), widths 64..1024 with 2x2 max-pooling, and the Feature Similarity
Module on the 1/16 map: a non-local "dot" block whose affinity is divided by the number of
positions N instead of a softmax. Each decoder stage upsamples (nearest), applies a 3x3 conv,
concatenates [skip, up] and runs an X-block. Keras layer semantics (BN eps/momentum, he_normal)
come from :mod:`strokeseg.models.keras_layers`. At width 1 with 1 input and 1 output channel it
has 15,072,332 trainable parameters; Keras' summary reports 15,117,646 because it also counts
the BatchNorm moving statistics.
"""

from __future__ import annotations

import torch
from torch import nn

from strokeseg.models.blocks import ConvBNReLU, scaled
from strokeseg.models.keras_layers import he_normal_, keras_bn
from strokeseg.models.registry import register_model

WIDTHS = (64, 128, 256, 512, 1024)


class SeparableUnit(nn.Sequential):
    """3x3 depthwise conv (no bias) + BN + ReLU, then 1x1 conv + BN + ReLU."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(
            nn.Conv2d(in_ch, in_ch, 3, padding=1, groups=in_ch, bias=False),
            keras_bn(in_ch),
            nn.ReLU(inplace=True),
            ConvBNReLU(in_ch, out_ch, 1, keras=True),
        )


class XBlock(nn.Module):
    """Three separable units added to a 1x1 conv+BN+ReLU residual branch."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.residual = ConvBNReLU(in_ch, out_ch, 1, keras=True)
        self.body = nn.Sequential(
            SeparableUnit(in_ch, out_ch),
            SeparableUnit(out_ch, out_ch),
            SeparableUnit(out_ch, out_ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.residual(x)


class FeatureSimilarityModule(nn.Module):
    """Non-local block in 'dot' mode on a C/8 projection, scaled by 1/N, residual to the input."""

    def __init__(self, channels: int):
        super().__init__()
        inner = max(1, channels // 8)
        mid = max(1, inner // 2)
        self.reduce = ConvBNReLU(channels, inner, 3, keras=True)
        self.theta = nn.Conv2d(inner, mid, 1, bias=False)
        self.phi = nn.Conv2d(inner, mid, 1, bias=False)
        self.g = nn.Conv2d(inner, mid, 1, bias=False)
        self.out = nn.Conv2d(mid, inner, 1, bias=False)
        self.expand = ConvBNReLU(inner, channels, 3, keras=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ip = self.reduce(x)
        b, _, h, w = ip.shape
        theta, phi, g = (conv(ip).flatten(2) for conv in (self.theta, self.phi, self.g))
        affinity = theta.transpose(1, 2) @ phi / (h * w)  # (B, N, N), no softmax
        y = (g @ affinity.transpose(1, 2)).view(b, -1, h, w)
        return self.expand(ip + self.out(y)) + x


class XNet(nn.Module):
    """X-Net with a 1x1 mask head; forward returns mask logits (the sigmoid is left to the loss)."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: float = 1.0):
        super().__init__()
        c = [scaled(n, width) for n in WIDTHS]
        self.encoder = nn.ModuleList(
            XBlock(c_in, c_out) for c_in, c_out in zip([in_channels, *c[:-1]], c, strict=True)
        )
        self.pool = nn.MaxPool2d(2)
        self.fsm = FeatureSimilarityModule(c[-1])
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.up_convs = nn.ModuleList(
            ConvBNReLU(c[i + 1], c[i], 3, keras=True) for i in reversed(range(4))
        )
        self.decoder = nn.ModuleList(XBlock(2 * c[i], c[i]) for i in reversed(range(4)))
        self.head = nn.Conv2d(c[0], out_channels, 1)
        he_normal_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % 16 or x.shape[-1] % 16:
            raise ValueError(f"X-Net needs H and W divisible by 16, got {tuple(x.shape[-2:])}")
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = self.fsm(skips.pop())
        for up_conv, block in zip(self.up_convs, self.decoder, strict=True):
            x = block(torch.cat([skips.pop(), up_conv(self.up(x))], dim=1))
        return self.head(x)


@register_model("xnet")
def xnet(in_channels: int = 1, out_channels: int = 1, width: float = 1.0) -> XNet:
    """X-Net (Qi et al. 2019), a Table 1/3 baseline."""
    return XNet(in_channels, out_channels, width)
