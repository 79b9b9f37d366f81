"""Attention U-Net of Oktay et al., MIDL 2018 (https://arxiv.org/abs/1804.03999), in 2D.

The official code (ozan-oktay/Attention-Gated-Networks) is 3D only. This follows the 2D port
most papers use, ``AttU_Net`` in LeeJunHyun/Image_Segmentation (``network.py``): a U-Net of
widths 64..1024 (two 3x3 conv + BN + ReLU per level, 2x2 max-pool), each up step a 2x nearest
upsampling + 3x3 conv + BN + ReLU, and an additive attention gate on **every** skip, gated by
the upsampled decoder map at the same resolution:
alpha = sigmoid(BN(psi(ReLU(BN(W_g g) + BN(W_x x))))), skip = x * alpha, with F_int = F_l / 2.
34,877,421 parameters at 1 in / 1 out.

MONAI's ``AttentionUnet`` is not used: it downsamples by strided convolutions, upsamples by
transposed convolutions and merges with one conv per level, so at the same widths it is a
different network (31,739,185 parameters).
"""

from __future__ import annotations

import torch
from torch import nn

from strokeseg.models.blocks import ConvBNReLU, DoubleConv, require_multiple, scaled
from strokeseg.models.registry import register_model

DEPTH = 5


class AttentionGate(nn.Module):
    """Additive attention gate: scales the skip ``x`` by a per-pixel weight in (0, 1)."""

    def __init__(self, g_ch: int, x_ch: int, inter_ch: int):
        super().__init__()
        self.w_g = nn.Sequential(nn.Conv2d(g_ch, inter_ch, 1), nn.BatchNorm2d(inter_ch))
        self.w_x = nn.Sequential(nn.Conv2d(x_ch, inter_ch, 1), nn.BatchNorm2d(inter_ch))
        self.psi = nn.Sequential(nn.Conv2d(inter_ch, 1, 1), nn.BatchNorm2d(1), nn.Sigmoid())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x * self.psi(self.relu(self.w_g(g) + self.w_x(x)))


class AttentionUNet(nn.Module):
    """2D Attention U-Net (LeeJunHyun layout); forward returns mask logits at the input size."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: float = 1.0):
        super().__init__()
        f = [scaled(64 * 2**i, width) for i in range(DEPTH)]
        self.encoder = nn.ModuleList(
            DoubleConv(in_channels if i == 0 else f[i - 1], f[i]) for i in range(DEPTH)
        )
        self.pool = nn.MaxPool2d(2)
        levels = range(DEPTH - 2, -1, -1)
        self.ups = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2), ConvBNReLU(f[i + 1], f[i])) for i in levels
        )
        self.gates = nn.ModuleList(AttentionGate(f[i], f[i], max(1, f[i] // 2)) for i in levels)
        self.decoder = nn.ModuleList(DoubleConv(2 * f[i], f[i]) for i in levels)
        self.head = nn.Conv2d(f[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        require_multiple(x, 2 ** (DEPTH - 1), "Attention U-Net")
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, gate, block in zip(self.ups, self.gates, self.decoder, strict=True):
            g = up(x)
            x = block(torch.cat([gate(g, skips.pop()), g], dim=1))
        return self.head(x)


@register_model("attention_unet")
def attention_unet(**kwargs) -> AttentionUNet:
    """Attention U-Net baseline (Tables 1 and 3)."""
    return AttentionUNet(**kwargs)
