"""DeepLab v3+ of Chen et al., ECCV 2018 (https://arxiv.org/abs/1802.02611), ResNet-101 backbone.

Follows jfzhang95/pytorch-deeplab-xception (``modeling/deeplab.py``, ``aspp.py``,
``decoder.py``; backbone in :mod:`strokeseg.models.resnet`): ResNet-101 at output stride 16
(multi-grid 1, 2, 4 in stage 4); ASPP with a 1x1 branch, three 3x3 atrous branches at rates
6, 12, 18 (doubled at output stride 8) and image pooling, each 256 channels + BN + ReLU, then a
1x1 projection to 256 + BN + ReLU; a decoder that projects the stride-4 features to 48
channels, concatenates them with the bilinearly upsampled ASPP output (304 channels), applies
two 3x3 conv + BN + ReLU to 256 and a 1x1 head; bilinear upsampling (align_corners, as in
jfzhang95) back to the input size (x4). The paper's main backbone, aligned Xception, is not
built. No dropout (jfzhang95 at the commits of ``aspp.py``/``decoder.py`` read). 59,332,897
parameters at 1 in / 1 out.

The image-pooling branch applies BatchNorm to a 1x1 map, so training needs batches of >= 2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from strokeseg.models.blocks import ConvBNReLU, scaled
from strokeseg.models.registry import register_model
from strokeseg.models.resnet import ResNet


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, three atrous 3x3, image pooling; 1x1 projection."""

    def __init__(self, in_ch: int, out_ch: int, rates: tuple[int, ...]):
        super().__init__()
        self.branches = nn.ModuleList(
            [ConvBNReLU(in_ch, out_ch, 1, bias=False)]
            + [ConvBNReLU(in_ch, out_ch, 3, dilation=r, bias=False) for r in rates]
        )
        self.image_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), ConvBNReLU(in_ch, out_ch, 1, bias=False)
        )
        self.project = ConvBNReLU(out_ch * (len(rates) + 2), out_ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.interpolate(
            self.image_pool(x), size=x.shape[-2:], mode="bilinear", align_corners=True
        )
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], dim=1))


class DeepLabV3Plus(nn.Module):
    """ResNet + ASPP + low-level decoder; forward returns mask logits at the input size."""

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        width: float = 1.0,
        layers: tuple[int, ...] = (3, 4, 23, 3),
        output_stride: int = 16,
        multi_grid: tuple[int, ...] = (1, 2, 4),
    ):
        super().__init__()
        self.backbone = ResNet(in_channels, layers, width, output_stride, multi_grid)
        aspp_ch, low_ch = scaled(256, width), scaled(48, width)
        rates = tuple(r * 16 // output_stride for r in (6, 12, 18))
        self.aspp = ASPP(self.backbone.out_channels, aspp_ch, rates)
        self.low_level = ConvBNReLU(self.backbone.low_level_channels, low_ch, 1, bias=False)
        self.fuse = nn.Sequential(
            ConvBNReLU(aspp_ch + low_ch, aspp_ch, bias=False),
            ConvBNReLU(aspp_ch, aspp_ch, bias=False),
        )
        self.head = nn.Conv2d(aspp_ch, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deep, low = self.backbone(x)
        low = self.low_level(low)
        deep = F.interpolate(
            self.aspp(deep), size=low.shape[-2:], mode="bilinear", align_corners=True
        )
        y = self.head(self.fuse(torch.cat([deep, low], dim=1)))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=True)


@register_model("deeplabv3plus")
def deeplabv3plus(**kwargs) -> DeepLabV3Plus:
    """DeepLab v3+ (ResNet-101, output stride 16) baseline (Tables 1 and 3)."""
    return DeepLabV3Plus(**kwargs)
