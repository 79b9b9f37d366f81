"""SegNet of Badrinarayanan, Kendall and Cipolla, TPAMI 2017 (https://arxiv.org/abs/1511.00561).

Follows the official Caffe model (alexgkendall/SegNet-Tutorial, ``Models/segnet_train.prototxt``):
the 13 convolutions of VGG16 without its FC layers, each 3x3 conv (with bias) + BN + ReLU, a
2x2 stride-2 max-pool after each of the 5 blocks that keeps its argmax indices, and a mirrored
decoder that max-unpools with those indices (the only link between encoder and decoder) before
its conv + BN + ReLU layers. The last decoder layer (``conv1_1_D``) is a plain 3x3 conv to the
classes. Pooling rounds up as Caffe does (``ceil_mode``) and unpooling restores each stored
size, so any H and W work; 224x192 and 512x512 give 7x6 and 16x16 at the bottom.
29,442,433 parameters at 1 in / 1 out.
"""

from __future__ import annotations

import torch
from torch import nn

from strokeseg.models.blocks import ConvBNReLU, scaled
from strokeseg.models.registry import register_model

# Output widths of each conv, encoder blocks 1..5 and decoder blocks 5..1 (before the head).
ENCODER = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
DECODER = ((512, 512, 512), (512, 512, 256), (256, 256, 128), (128, 64), (64,))


def conv_stack(in_ch: int, widths: tuple[int, ...], width: float) -> nn.Sequential:
    layers = []
    for c in widths:
        layers.append(ConvBNReLU(in_ch, scaled(c, width)))
        in_ch = scaled(c, width)
    return nn.Sequential(*layers)


class SegNet(nn.Module):
    """VGG16-BN encoder-decoder with pooling-index unpooling; forward returns mask logits."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: float = 1.0):
        super().__init__()
        ins = [in_channels] + [scaled(b[-1], width) for b in ENCODER[:-1]]
        self.encoder = nn.ModuleList(
            conv_stack(c, b, width) for c, b in zip(ins, ENCODER, strict=True)
        )
        dec_ins = [scaled(ENCODER[-1][-1], width)] + [scaled(b[-1], width) for b in DECODER[:-1]]
        self.decoder = nn.ModuleList(
            conv_stack(c, b, width) for c, b in zip(dec_ins, DECODER, strict=True)
        )
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True, return_indices=True)
        self.head = nn.Conv2d(scaled(DECODER[-1][-1], width), out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        indices, before = [], []
        for block in self.encoder:
            x = block(x)
            before.append(x)
            x, idx = self.pool(x)
            indices.append(idx)
        for block in self.decoder:
            x = block(unpool(x, indices.pop(), like=before.pop()))
        return self.head(x)


def unpool(x: torch.Tensor, indices: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``MaxUnpool2d`` onto the grid of ``like`` (the map before pooling), as one scatter.

    Equal to ``nn.MaxUnpool2d(2, 2)(x, indices, output_size=like.shape[-2:])``, whose size
    check fails under ONNX tracing (a ``TypeError`` on traced sizes); a scatter into
    ``zeros_like`` takes the size from the tensor itself, so the export keeps H and W dynamic.
    """
    flat = torch.zeros_like(like).flatten(2)
    return flat.scatter(2, indices.flatten(2), x.flatten(2)).view_as(like)


@register_model("segnet")
def segnet(**kwargs) -> SegNet:
    """SegNet baseline (Tables 1 and 3)."""
    return SegNet(**kwargs)
