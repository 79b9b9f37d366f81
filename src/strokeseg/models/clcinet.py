"""CLCI-Net: Yang et al., "CLCI-Net: Cross-Level fusion and Context Inference Networks for Lesion
Segmentation of Chronic Stroke", MICCAI 2019 (https://arxiv.org/abs/1907.07008).

Follows the official Keras code (YH0517/CLCI_Net, ``CLCI_Net.py`` and ``custom_layer.py``):
- Cross-level fusion encoder (widths 32..512): before each deeper level, every earlier encoder
  output is brought to the new resolution by a strided 3x3 conv and concatenated with the pooled
  map, then fused by a 1x1 conv to four times the next width.
- CLF-ASPP on the 1/16 map: 1x1, three atrous 3x3 (rates 2, 4, 6), image pooling, and four
  strided 3x3 convs from conv1..conv4, concatenated and projected to 1024.
- Context-inference decoder: the upsampled map and the skip form a 2-step sequence for a
  ConvLSTM2D whose last hidden state feeds two 3x3 convs.
All convs are Keras ``Conv2D`` (with bias, 'same' padding) + BN + ReLU. At width 1 with 1 input
and 1 output channel it has 36,813,025 trainable parameters (Keras total 36,838,305 with the
BatchNorm moving statistics).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from strokeseg.models.blocks import ConvBNReLU, DoubleConv, scaled
from strokeseg.models.keras_layers import he_normal_
from strokeseg.models.registry import register_model

WIDTHS = (32, 64, 128, 256, 512)
ASPP_WIDTH = 256
ASPP_RATES = (2, 4, 6)


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Keras 2.x ``hard_sigmoid``: clip(0.2 x + 0.5, 0, 1)."""
    return (0.2 * x + 0.5).clamp(0.0, 1.0)


class ConvLSTM2d(nn.Module):
    """Keras ``ConvLSTM2D(return_sequences=False)``: gates i, f, c, o; hard-sigmoid gates, tanh.

    The input kernel has a bias, the recurrent kernel has none; the forget-gate bias starts at 1
    (Keras ``unit_forget_bias``). State starts at zero.
    """

    def __init__(self, in_ch: int, hidden: int, kernel_size: int = 3):
        super().__init__()
        self.hidden = hidden
        self.input_conv = nn.Conv2d(in_ch, 4 * hidden, kernel_size, padding=kernel_size // 2)
        self.recurrent_conv = nn.Conv2d(
            hidden, 4 * hidden, kernel_size, padding=kernel_size // 2, bias=False
        )

    def reset_forget_bias(self) -> None:
        with torch.no_grad():
            self.input_conv.bias.zero_()
            self.input_conv.bias[self.hidden : 2 * self.hidden] = 1.0

    def forward(self, steps: list[torch.Tensor]) -> torch.Tensor:
        b, _, h, w = steps[0].shape
        hid = steps[0].new_zeros(b, self.hidden, h, w)
        cell = torch.zeros_like(hid)
        for x in steps:
            i, f, c, o = (self.input_conv(x) + self.recurrent_conv(hid)).chunk(4, dim=1)
            cell = hard_sigmoid(f) * cell + hard_sigmoid(i) * torch.tanh(c)
            hid = hard_sigmoid(o) * torch.tanh(cell)
        return hid


class CLFASPP(nn.Module):
    """ASPP over the 1/16 map plus cross-level branches from every encoder level."""

    def __init__(self, deep_ch: int, level_chs: list[int], width: int):
        super().__init__()
        n = len(level_chs)
        self.cross = nn.ModuleList(
            ConvBNReLU(c, width, 3, stride=2 ** (n - j), keras=True)
            for j, c in enumerate(level_chs)
        )
        self.point = ConvBNReLU(deep_ch, width, 1, keras=True)
        self.atrous = nn.ModuleList(
            ConvBNReLU(deep_ch, width, 3, dilation=r, keras=True) for r in ASPP_RATES
        )
        self.image = ConvBNReLU(deep_ch, width, 1, keras=True)
        self.project = ConvBNReLU(width * (n + len(ASPP_RATES) + 2), 4 * width, 1, keras=True)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor, levels: list[torch.Tensor]) -> torch.Tensor:
        pooled = self.image(F.adaptive_avg_pool2d(x, 1)).expand(-1, -1, *x.shape[-2:])
        branches = [conv(f) for conv, f in zip(self.cross, levels, strict=True)]
        branches += [self.point(x), *(conv(x) for conv in self.atrous), pooled]
        return self.dropout(self.project(torch.cat(branches, dim=1)))


class ContextInference(nn.Module):
    """Decoder stage: up x2 + 2x2 conv, 1x1 skip conv, ConvLSTM over [up, skip], two 3x3 convs."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int):
        super().__init__()
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"), ConvBNReLU(in_ch, out_ch, 2, keras=True)
        )
        self.skip = ConvBNReLU(skip_ch, out_ch, 1, keras=True)
        self.lstm = ConvLSTM2d(out_ch, out_ch)
        self.conv = DoubleConv(out_ch, out_ch, keras=True)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(self.lstm([self.up(x), self.skip(skip)]))


class CLCINet(nn.Module):
    """CLCI-Net with a 1x1 mask head; forward returns mask logits (no sigmoid)."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: float = 1.0):
        super().__init__()
        c = [scaled(n, width) for n in WIDTHS]
        self.convs = nn.ModuleList([DoubleConv(in_channels, c[0], keras=True)])
        self.downs = nn.ModuleList()
        self.fusions = nn.ModuleList()
        for k in range(4):
            # level k pools conv_k and brings conv_0..conv_k to its 1/2**(k+1) grid at width c[k]
            self.downs.append(
                nn.ModuleList(
                    ConvBNReLU(c[j], c[k], 3, stride=2 ** (k - j + 1), keras=True)
                    for j in range(k + 1)
                )
            )
            self.fusions.append(ConvBNReLU(c[k] * (k + 2), 4 * c[k + 1], 1, keras=True))
            self.convs.append(DoubleConv(4 * c[k + 1], c[k + 1], keras=True))
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout(0.5)
        aspp = scaled(ASPP_WIDTH, width)
        self.aspp = CLFASPP(c[4], c[:4], aspp)
        ins = [4 * aspp, c[3], c[2], c[1]]
        self.decoder = nn.ModuleList(ContextInference(ins[i], c[3 - i], c[3 - i]) for i in range(4))
        self.head = nn.Conv2d(c[0], out_channels, 1)
        he_normal_(self)
        for stage in self.decoder:
            stage.lstm.reset_forget_bias()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % 16 or x.shape[-1] % 16:
            raise ValueError(f"CLCI-Net needs H and W divisible by 16, got {tuple(x.shape[-2:])}")
        levels = [self.convs[0](x)]
        for k in range(4):
            parts = [down(levels[j]) for j, down in reversed(list(enumerate(self.downs[k])))]
            fused = self.fusions[k](torch.cat([*parts, self.pool(levels[k])], dim=1))
            levels.append(self.convs[k + 1](fused))
        x = self.aspp(self.dropout(levels[4]), levels[:4])
        for stage, skip in zip(self.decoder, reversed(levels[:4]), strict=True):
            x = stage(x, skip)
        return self.head(x)


@register_model("clcinet")
def clcinet(in_channels: int = 1, out_channels: int = 1, width: float = 1.0) -> CLCINet:
    """CLCI-Net (Yang et al. 2019), a Table 1/3 baseline."""
    return CLCINet(in_channels, out_channels, width)
