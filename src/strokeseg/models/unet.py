"""U-Net of Ronneberger, Fischer and Brox, MICCAI 2015 (https://arxiv.org/abs/1505.04597).

There is no official PyTorch code; this follows the paper's layout in its common padded
variant: five levels of widths 64..1024, each two 3x3 convolutions + ReLU, 2x2 max-pool
down, 2x2 stride-2 transposed convolution up (halving the channels), concatenation with the
encoder map, 1x1 head.

Differences from the paper, on purpose: ``same`` padding (so the output has the input's size
and no skip cropping is needed; H and W must be multiples of 16), BatchNorm after every 3x3
conv by default (``batch_norm=False`` gives the paper's plain conv + ReLU), no dropout at the
end of the contracting path. Parameters at 1 in / 1 out: 31,030,593 without BatchNorm (the
paper's layer list), 31,042,369 with it (+2 affine parameters for each of the 5,888 BN channels).
"""

from __future__ import annotations

import torch
from torch import nn

from strokeseg.models.blocks import DoubleConv, require_multiple, scaled
from strokeseg.models.registry import register_model

DEPTH = 5


class UNet(nn.Module):
    """Padded U-Net; forward returns mask logits at the input size."""

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        width: float = 1.0,
        batch_norm: bool = True,
    ):
        super().__init__()
        f = [scaled(64 * 2**i, width) for i in range(DEPTH)]
        self.encoder = nn.ModuleList(
            DoubleConv(in_channels if i == 0 else f[i - 1], f[i], batch_norm) for i in range(DEPTH)
        )
        self.pool = nn.MaxPool2d(2)
        levels = range(DEPTH - 2, -1, -1)
        self.ups = nn.ModuleList(nn.ConvTranspose2d(f[i + 1], f[i], 2, stride=2) for i in levels)
        self.decoder = nn.ModuleList(DoubleConv(2 * f[i], f[i], batch_norm) for i in levels)
        self.head = nn.Conv2d(f[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        require_multiple(x, 2 ** (DEPTH - 1), "U-Net")
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, block in zip(self.ups, self.decoder, strict=True):
            x = block(torch.cat([skips.pop(), up(x)], dim=1))
        return self.head(x)


@register_model("unet")
def unet(**kwargs) -> UNet:
    """U-Net baseline (Tables 1 and 3)."""
    return UNet(**kwargs)
