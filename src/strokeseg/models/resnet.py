"""ResNet backbone with Bottleneck blocks (He et al., CVPR 2016, https://arxiv.org/abs/1512.03385)
for DeepLab v3+, written here because torchvision is not used.

Follows ``modeling/backbone/resnet.py`` of jfzhang95/pytorch-deeplab-xception (itself the
torchvision layout: stride on the 3x3 conv, 1x1 projection shortcut + BN where the shape
changes, no conv bias): a 7x7 stride-2 stem to 64 + BN + ReLU, a 3x3 stride-2 max-pool, then
four stages of ``layers`` Bottlenecks with 64, 128, 256, 512 planes (x4 out). The output stride
is 16 (strides 1,2,2,1; dilation 2 in stage 4) or 8 (strides 1,2,1,1; dilations 2, 4 in stages 3
and 4), and stage 4 multiplies its dilation by the multi-grid factors (1, 2, 4) block by block.
The stem takes ``in_channels`` (1 here); there is no classifier. This is the plain
BatchNorm ResNet, unlike TransUNet's ResNetV2 (GroupNorm + weight standardisation).
"""

from __future__ import annotations

import torch
from torch import nn

from strokeseg.models.blocks import scaled

EXPANSION = 4
STRIDES_DILATIONS = {16: ((1, 2, 2, 1), (1, 1, 1, 2)), 8: ((1, 2, 1, 1), (1, 1, 2, 4))}


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, dilated), 1x1 expand x4, each + BN; ReLU after the sum."""

    def __init__(self, in_ch: int, planes: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        out_ch = planes * EXPANSION
        self.body = nn.Sequential(
            nn.Conv2d(in_ch, planes, 1, bias=False),
            nn.BatchNorm2d(planes),
            nn.ReLU(inplace=True),
            nn.Conv2d(
                planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
            ),
            nn.BatchNorm2d(planes),
            nn.ReLU(inplace=True),
            nn.Conv2d(planes, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        )
        self.shortcut = (
            nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )
            if stride != 1 or in_ch != out_ch
            else nn.Identity()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    """Dilated ResNet; forward returns (last stage, stage-1 output at stride 4)."""

    def __init__(
        self,
        in_channels: int = 1,
        layers: tuple[int, ...] = (3, 4, 23, 3),
        width: float = 1.0,
        output_stride: int = 16,
        multi_grid: tuple[int, ...] = (1, 2, 4),
    ):
        super().__init__()
        if output_stride not in STRIDES_DILATIONS:
            raise ValueError(f"output_stride must be 8 or 16, got {output_stride}")
        if len(layers) != 4 or len(multi_grid) != layers[3]:
            raise ValueError(
                f"need 4 stage depths and one multi-grid factor per stage-4 block, "
                f"got layers={layers}, multi_grid={multi_grid}"
            )
        strides, dilations = STRIDES_DILATIONS[output_stride]
        stem = scaled(64, width)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(stem),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        in_ch, stages = stem, []
        for s, (depth, stride, dilation) in enumerate(zip(layers, strides, dilations, strict=True)):
            planes = scaled(64 * 2**s, width)
            grid = multi_grid if s == 3 else (1,) * depth
            blocks = []
            for b in range(depth):
                blocks.append(
                    Bottleneck(in_ch, planes, stride if b == 0 else 1, dilation * grid[b])
                )
                in_ch = planes * EXPANSION
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.low_level_channels = scaled(64, width) * EXPANSION
        self.out_channels = in_ch

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        low_level = x = self.stages[0](x)
        for stage in self.stages[1:]:
            x = stage(x)
        return x, low_level
