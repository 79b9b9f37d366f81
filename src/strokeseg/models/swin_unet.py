"""Swin-Unet: Cao et al., "Swin-Unet: Unet-like Pure Transformer for Medical Image Segmentation",
ECCV Workshops 2022 (https://arxiv.org/abs/2105.05537).

Follows the official code (HuCaoFighting/Swin-Unet,
``networks/swin_transformer_unet_skip_expand_decoder_sys.py``, config
``swin_tiny_patch4_window7_224_lite.yaml``): Swin-T encoder (4x4 patch embedding to 96, depths
[2, 2, 2, 2], heads [3, 6, 12, 24], window 7, patch merging), a symmetric decoder of patch
expanding + skip concat + Linear 2C->C + Swin blocks (the encoder's depths mirrored; the yaml's
DECODER_DEPTHS is unused there too), and a final x4 patch expand with a 1x1 head. Stochastic
depth rises linearly to 0.2 over the encoder blocks; the decoder reuses the mirrored rates.

The official model only accepts its construction size (224x224). Here the input is zero-padded
bottom/right to the next multiple of ``patch * 8 * window`` per side (224 at the defaults: every
stage then tiles into whole windows), the shift masks are built for the actual padded grid, and
the logits are cropped back. As in Swin, a stage whose grid is no larger than the window does
not shift. At width 1 with 1 output channel it has 27,168,132 parameters (27,168,900 at 9).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from strokeseg.models.blocks import scaled
from strokeseg.models.registry import register_model

STAGES = 4


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero whole samples of a residual branch with probability ``p``."""
    if p == 0.0 or not training:
        return x
    keep = x.new_empty(x.shape[0], *([1] * (x.dim() - 1))).bernoulli_(1 - p)
    return x * keep / (1 - p)


def windows(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, ws * ws, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).transpose(2, 3)
    return x.reshape(-1, ws * ws, c)


def merge_windows(x: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`windows`."""
    c = x.shape[-1]
    x = x.view(-1, h // ws, w // ws, ws, ws, c).transpose(2, 3)
    return x.reshape(-1, h, w, c)


@functools.lru_cache(maxsize=64)
def shift_mask(h: int, w: int, ws: int, shift: int, device: torch.device) -> torch.Tensor:
    """(nW, ws*ws, ws*ws) additive mask (-100 between regions the cyclic shift made adjacent)."""
    region = torch.zeros(1, h, w, 1, device=device)
    bands = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    label = 0
    for hs in bands:
        for wsl in bands:
            region[:, hs, wsl, :] = label
            label += 1
    ids = windows(region, ws).squeeze(-1)
    return (ids[:, None, :] != ids[:, :, None]).float() * -100.0


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window, with a learned relative position bias."""

    def __init__(self, dim: int, heads: int, ws: int):
        super().__init__()
        self.heads, self.ws = heads, ws
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij"))
        rel = (coords.flatten(1)[:, :, None] - coords.flatten(1)[:, None, :]) + ws - 1
        self.register_buffer("bias_index", rel[0] * (2 * ws - 1) + rel[1], persistent=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        bias = self.bias_table[self.bias_index].permute(2, 0, 1)  # (heads, n, n)
        if mask is not None:
            nw = mask.shape[0]
            bias = (bias[None] + mask[:, None]).repeat(bw // nw, 1, 1, 1)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(y.transpose(1, 2).reshape(bw, n, c))


class SwinBlock(nn.Module):
    """Pre-LN (shifted-)window attention + GELU MLP, each with stochastic depth."""

    def __init__(self, dim: int, heads: int, ws: int, shifted: bool, dpr: float):
        super().__init__()
        self.ws, self.shifted, self.dpr = ws, shifted, dpr
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, ws)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, H, W, C) with H and W multiples of the window."""
        _, h, w, _ = x.shape
        shift = self.ws // 2 if self.shifted and min(h, w) > self.ws else 0
        y = self.norm1(x)
        mask = None
        if shift:
            y = torch.roll(y, (-shift, -shift), dims=(1, 2))
            mask = shift_mask(h, w, self.ws, shift, x.device)
        y = merge_windows(self.attn(windows(y, self.ws), mask), self.ws, h, w)
        if shift:
            y = torch.roll(y, (shift, shift), dims=(1, 2))
        x = x + drop_path(y, self.dpr, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.dpr, self.training)


class PatchMerging(nn.Module):
    """2x2 neighbours concatenated (4C), LayerNorm, Linear 4C -> 2C without bias."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = (x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2])
        return self.reduction(self.norm(torch.cat(parts, dim=-1)))


class PatchExpand(nn.Module):
    """Linear C -> s*s*C', rearranged to an s-times finer grid of C' channels, then LayerNorm."""

    def __init__(self, dim: int, scale: int, out_dim: int):
        super().__init__()
        self.scale, self.out_dim = scale, out_dim
        self.expand = nn.Linear(dim, scale * scale * out_dim, bias=False)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        s = self.scale
        x = self.expand(x).view(b, h, w, s, s, self.out_dim).transpose(2, 3)
        return self.norm(x.reshape(b, h * s, w * s, self.out_dim))


def stage(dim: int, heads: int, ws: int, rates: list[float]) -> nn.Sequential:
    return nn.Sequential(*(SwinBlock(dim, heads, ws, i % 2 == 1, r) for i, r in enumerate(rates)))


class SwinUnet(nn.Module):
    """Swin-Unet; forward pads to whole windows, returns mask logits cropped to the input size."""

    grid_bound = True  # evaluated on its training grid (inference/grid.py)

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        width: float = 1.0,
        embed_dim: int = 96,
        depths: tuple[int, ...] = (2, 2, 2, 2),
        heads: tuple[int, ...] = (3, 6, 12, 24),
        window_size: int = 7,
        patch_size: int = 4,
        drop_path_rate: float = 0.2,
    ):
        super().__init__()
        if len(depths) != STAGES or len(heads) != STAGES:
            raise ValueError(f"depths and heads need {STAGES} entries, got {depths}, {heads}")
        self.in_channels = 3 if in_channels == 1 else in_channels
        self.window, self.patch = window_size, patch_size
        c = scaled(embed_dim, width, heads[0])
        dims = [c * 2**i for i in range(STAGES)]
        if any(d % h for d, h in zip(dims, heads, strict=True)):
            raise ValueError(f"stage dims {dims} are not divisible by heads {heads}")
        self.patch_embed = nn.Conv2d(self.in_channels, c, patch_size, patch_size)
        self.patch_norm = nn.LayerNorm(c)
        n = sum(depths)
        dpr = [drop_path_rate * i / max(n - 1, 1) for i in range(n)]  # linear, as the official
        rates = [dpr[sum(depths[:i]) : sum(depths[: i + 1])] for i in range(STAGES)]
        self.encoder = nn.ModuleList(
            stage(dims[i], heads[i], window_size, rates[i]) for i in range(STAGES)
        )
        self.merges = nn.ModuleList(PatchMerging(dims[i]) for i in range(STAGES - 1))
        self.norm = nn.LayerNorm(dims[-1])
        self.expands = nn.ModuleList(
            PatchExpand(dims[i + 1], 2, dims[i]) for i in reversed(range(STAGES - 1))
        )
        self.concat_back = nn.ModuleList(
            nn.Linear(2 * dims[i], dims[i]) for i in reversed(range(STAGES - 1))
        )
        self.decoder = nn.ModuleList(
            stage(dims[i], heads[i], window_size, rates[i]) for i in reversed(range(STAGES - 1))
        )
        self.norm_up = nn.LayerNorm(c)
        self.final_expand = PatchExpand(c, patch_size, c)
        self.head = nn.Conv2d(c, out_channels, 1, bias=False)
        self.apply(_init_weights)

    @property
    def size_multiple(self) -> int:
        """Input sides are padded to a multiple of this: every stage grid tiles into windows."""
        return self.patch * 2 ** (STAGES - 1) * self.window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = self.size_multiple
        x = F.pad(x, (0, -w % m, 0, -h % m))
        if x.shape[1] == 1 and self.in_channels == 3:
            x = x.repeat(1, 3, 1, 1)
        x = self.patch_norm(self.patch_embed(x).permute(0, 2, 3, 1))  # (B, H/4, W/4, C)
        skips = []
        for blocks, merge in zip(self.encoder[:-1], self.merges, strict=True):
            skips.append(x)
            x = merge(blocks(x))
        x = self.norm(self.encoder[-1](x))
        for expand, concat, blocks in zip(
            self.expands, self.concat_back, self.decoder, strict=True
        ):
            x = blocks(concat(torch.cat([expand(x), skips.pop()], dim=-1)))
        x = self.final_expand(self.norm_up(x))
        return self.head(x.permute(0, 3, 1, 2))[..., :h, :w]


def _init_weights(m: nn.Module) -> None:
    """The official init: truncated normal (0.02) Linear weights, zero biases, unit LayerNorm."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


@register_model("swin_unet")
def swin_unet(
    in_channels: int = 1, out_channels: int = 1, width: float = 1.0, **kwargs
) -> SwinUnet:
    """Swin-Unet, Swin-T (Cao et al. 2021); kwargs: embed_dim, depths, heads, window_size, ..."""
    return SwinUnet(in_channels, out_channels, width, **kwargs)
