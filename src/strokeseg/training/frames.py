"""Training a network to give one answer whatever frame its input comes in.

A convolution pads its input with zeros, so a network reads where its input ends: inside a
region of zero input a BatchNorm layer emits a constant that is not zero, and the end of the
frame is an edge its deep layers see 32-48 px away (``benchmarks/crop_frame.py``,
docs/performance.md). The inference crop ends the frame at the crop box; the whole-volume path
ends it at the slice's edge, beyond a band of zeros; the two then disagree.

:class:`FrameMask` shows a network both frames in training. Hooks on its convolutions
(kernels larger than 1x1) multiply each one's input by a per-sample region, resized to the
feature map: inside the region the network then computes exactly what it computes on the
region cut out alone, for a region on the network's 16-pixel lattice (its convolutions see
zeros past the region's edge, as they see padding past a cut-out's edge; tested). With
``data.crop_frame: s``, a share s of each training batch is framed at the bounding box of its
nonzero pixels (where ``data.zero_outside_crop`` ended the input: the crop box, as far as the
patch reaches it), the rest as cut. The deployed network carries no hook.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


class FrameMask:
    """Pre-hooks on ``model``'s convolutions that zero their input outside ``region``."""

    def __init__(self, model: nn.Module):
        self.region: torch.Tensor | None = None
        for module in model.modules():
            if isinstance(module, nn.Conv2d) and module.kernel_size != (1, 1):
                module.register_forward_pre_hook(self._hook)

    def _hook(self, module: nn.Module, args: tuple) -> tuple | None:
        if self.region is None:
            return None
        x, *rest = args
        region = F.interpolate(self.region.to(x.dtype), size=x.shape[-2:], mode="nearest")
        return (x * region, *rest)

    @contextmanager
    def framed(self, region: torch.Tensor | None):
        """Within the block, convolutions see ``region`` ((B, 1, H, W), 1 inside) as the
        frame; None leaves them as they are."""
        self.region = region
        try:
            yield
        finally:
            self.region = None


def nonzero_boxes(image: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) regions: for ``chosen`` samples the bounding box of the pixels that are
    nonzero in any channel of ``image`` (B, C, H, W), the whole input for the others."""
    b, _, h, w = image.shape
    nonzero = (image != 0).any(dim=1)  # (B, H, W)
    rows, cols = nonzero.any(dim=2), nonzero.any(dim=1)  # (B, H), (B, W)

    def span(hit: torch.Tensor, n: int) -> torch.Tensor:
        index = torch.arange(n, device=hit.device)
        first = torch.where(hit, index, n).amin(dim=1, keepdim=True)
        last = torch.where(hit, index, -1).amax(dim=1, keepdim=True)
        return (index >= first) & (index <= last)  # (B, n); all False when nothing is nonzero

    inside = span(rows, h)[:, :, None] & span(cols, w)[:, None, :]
    keep_all = ~chosen.view(b, 1, 1) | ~nonzero.flatten(1).any(dim=1).view(b, 1, 1)
    return (inside | keep_all).unsqueeze(1).to(image.dtype)
