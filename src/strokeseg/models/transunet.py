"""TransUNet: Chen et al., "TransUNet: Transformers Make Strong Encoders for Medical Image
Segmentation", arXiv 2021 (https://arxiv.org/abs/2102.04306).

Follows the official code (Beckschen/TransUNet, ``networks/vit_seg_modeling.py``,
``vit_seg_modeling_resnet_skip.py``, config ``R50-ViT-B_16`` with n_skip=3):
- Hybrid encoder: a ResNetV2 with weight-standardised convs and GroupNorm, 3 stages (3, 4, 9
  units) to 1024 channels at 1/16, a 1x1 patch embedding to 768 on that grid, a learned
  position embedding (no class token), 12 pre-LN ViT blocks (12 heads, MLP 3072) and a final LN.
- Cascaded upsampler: a 3x3 conv to 512, four blocks of bilinear x2 + skip concat + two
  3x3 conv-BN-ReLU (channels 256, 128, 64, 16; skips 512, 256, 64), and a 3x3 head.
The position embedding is sized for ``img_size``; other inputs (any multiple of 16, not only
square) use it resized bicubically to their grid, as ViT fine-tuning at a new resolution does.
A 1-channel input is repeated to 3 channels, as in the official forward. At width 1, img_size
224x224, 1 input and 1 output channel it has 105,275,921 parameters (105,277,081 at 9 classes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from strokeseg.models.blocks import ConvBNReLU, scaled
from strokeseg.models.registry import register_model

UNITS = (3, 4, 9)
DECODER = (256, 128, 64, 16)


def _gn(channels: int, groups: int = 32, eps: float = 1e-6) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= ``groups`` that divides ``channels``."""
    g = max(d for d in range(1, min(groups, channels) + 1) if channels % d == 0)
    return nn.GroupNorm(g, channels, eps=eps)


class StdConv2d(nn.Conv2d):
    """Conv2d with weight standardisation (BiT), as in the R50 of ViT-hybrid."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(self.weight, dim=(1, 2, 3), keepdim=True, unbiased=False)
        w = (self.weight - mean) / torch.sqrt(var + 1e-5)
        return F.conv2d(x, w, None, self.stride, self.padding)


class Bottleneck(nn.Module):
    """ResNetV2 bottleneck as in the official code: conv-GN(-ReLU) x3, stride on the 3x3."""

    def __init__(self, cin: int, cout: int, cmid: int, stride: int = 1):
        super().__init__()
        self.conv1, self.gn1 = StdConv2d(cin, cmid, 1, bias=False), _gn(cmid)
        self.conv2 = StdConv2d(cmid, cmid, 3, stride, padding=1, bias=False)
        self.gn2 = _gn(cmid)
        self.conv3, self.gn3 = StdConv2d(cmid, cout, 1, bias=False), _gn(cout)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(
                StdConv2d(cin, cout, 1, stride, bias=False), nn.GroupNorm(cout, cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.proj is None else self.proj(x)
        y = F.relu(self.gn1(self.conv1(x)))
        y = F.relu(self.gn2(self.conv2(y)))
        return F.relu(residual + self.gn3(self.conv3(y)))


class ResNetV2(nn.Module):
    """R50 root + the first three stages; returns the 1/16 map and skips at 1/8, 1/4, 1/2."""

    def __init__(self, in_ch: int, width: int):
        super().__init__()
        self.root = nn.Sequential(
            StdConv2d(in_ch, width, 7, 2, padding=3, bias=False), _gn(width), nn.ReLU(inplace=True)
        )
        self.pool = nn.MaxPool2d(3, 2, padding=0)
        stages, cin = [], width
        for i, n in enumerate(UNITS):
            cout, cmid = width * 4 * 2**i, width * 2**i
            units = [Bottleneck(cin, cout, cmid, 1 if i == 0 else 2)]
            units += [Bottleneck(cout, cout, cmid) for _ in range(n - 1)]
            stages.append(nn.Sequential(*units))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.out_channels = cin

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h, w = x.shape[-2:]
        skips = [self.root(x)]
        x = self.pool(skips[0])
        for i, stage in enumerate(self.stages[:-1]):
            x = stage(x)
            # the unpadded 3x3 pool leaves stage 1 one row/column short: zero-pad it bottom-right
            rh, rw = h // (4 * 2**i), w // (4 * 2**i)
            skips.append(F.pad(x, (0, rw - x.shape[-1], 0, rh - x.shape[-2])))
        return self.stages[-1](x), skips[::-1]


class Block(nn.Module):
    """Pre-LN transformer block: multi-head self-attention and a GELU MLP, both residual."""

    def __init__(self, dim: int, heads: int, mlp: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp, dim),
            nn.Dropout(dropout),
        )
        for fc in (self.mlp[0], self.mlp[3]):
            nn.init.xavier_uniform_(fc.weight)
            nn.init.normal_(fc.bias, std=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)
        x = x + self.out(y)
        return x + self.mlp(self.norm2(x))


class DecoderBlock(nn.Module):
    """Bilinear x2 (align_corners), optional skip concat, two 3x3 conv-BN-ReLU."""

    def __init__(self, in_ch: int, out_ch: int, skip_ch: int):
        super().__init__()
        self.convs = nn.Sequential(
            ConvBNReLU(in_ch + skip_ch, out_ch, bias=False), ConvBNReLU(out_ch, out_ch, bias=False)
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return self.convs(x if skip is None else torch.cat([x, skip], dim=1))


class TransUNet(nn.Module):
    """R50-ViT-B/16 TransUNet with a CUP decoder; forward returns mask logits at input size."""

    grid_bound = True  # evaluated on its training grid (inference/grid.py)

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        width: float = 1.0,
        img_size: tuple[int, int] = (224, 224),
        depth: int = 12,
        heads: int = 12,
        dropout: float = 0.1,
    ):
        super().__init__()
        if img_size[0] % 16 or img_size[1] % 16:
            raise ValueError(f"img_size must be multiples of 16, got {img_size}")
        self.in_channels = 3 if in_channels == 1 else in_channels
        rw = scaled(64, width)
        dim = scaled(768, width, heads)
        self.resnet = ResNetV2(self.in_channels, rw)
        self.patch_embed = nn.Conv2d(self.resnet.out_channels, dim, 1)
        self.grid = (img_size[0] // 16, img_size[1] // 16)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.dropout = nn.Dropout(dropout)
        mlp = scaled(3072, width)
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp, dropout) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        dec = [scaled(c, width) for c in DECODER]
        self.conv_more = ConvBNReLU(dim, scaled(512, width), bias=False)
        ins = [scaled(512, width), *dec[:-1]]
        skips = [8 * rw, 4 * rw, rw, 0]
        self.decoder = nn.ModuleList(
            DecoderBlock(i, o, s) for i, o, s in zip(ins, dec, skips, strict=True)
        )
        self.head = nn.Conv2d(dec[-1], out_channels, 3, padding=1)

    def position_embedding(self, gh: int, gw: int) -> torch.Tensor:
        """The learned embedding, resized bicubically when the token grid differs from img_size."""
        if (gh, gw) == self.grid:
            return self.pos_embed
        grid = self.pos_embed.transpose(1, 2).reshape(1, -1, *self.grid)
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
        return grid.flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % 16 or w % 16:
            raise ValueError(f"TransUNet needs H and W divisible by 16, got {(h, w)}")
        if x.shape[1] == 1 and self.in_channels == 3:
            x = x.repeat(1, 3, 1, 1)
        x, skips = self.resnet(x)
        x = self.patch_embed(x)
        gh, gw = x.shape[-2:]
        tokens = self.dropout(x.flatten(2).transpose(1, 2) + self.position_embedding(gh, gw))
        tokens = self.norm(self.blocks(tokens))
        x = self.conv_more(tokens.transpose(1, 2).reshape(x.shape[0], -1, gh, gw))
        for block, skip in zip(self.decoder, [*skips, None], strict=True):
            x = block(x, skip)
        return self.head(x)


@register_model("transunet")
def transunet(
    in_channels: int = 1, out_channels: int = 1, width: float = 1.0, **kwargs
) -> TransUNet:
    """TransUNet R50-ViT-B/16 (Chen et al. 2021); kwargs: img_size, depth, heads, dropout."""
    return TransUNet(in_channels, out_channels, width, **kwargs)
