"""Training a network to give one answer whatever frame its input comes in.

A convolution pads its input with zeros, so a network reads where its input ends: inside a
region of zero input a BatchNorm layer emits a constant that is not zero, and the end of the
frame is an edge its deep layers see 32-48 px away (``benchmarks/crop_frame.py``,
docs/performance.md). The inference crop ends the frame at the crop box; the whole-volume path
ends it at the slice's edge, beyond a band of zeros; the two then disagree.

:class:`FrameMask` lets training compare the two frames. Hooks on its convolutions
(kernels larger than 1x1) multiply each one's input by a per-sample region, resized to the
feature map: inside the region the network then computes exactly what it computes on the
region cut out alone, for a region on the network's 16-pixel lattice (its convolutions see
zeros past the region's edge, as they see padding past a cut-out's edge; tested). With
``loss.frame_consistency: w`` adds ``w`` times :func:`frame_consistency` on a quarter of
each training batch (two more forward passes on it): the network is asked for the same answer
in both frames. The deployed network carries no hook.
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


MARGINS = (0, 16, 32, 48)  # px cut from each side of a patch: the network's 16-pixel lattice


def random_boxes(shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, 1, H, W) regions: per sample a box left after cutting a random margin of
    :data:`MARGINS` from each side (at least 32 px are left)."""
    b, _, h, w = shape
    cut = torch.tensor(MARGINS)[torch.randint(len(MARGINS), (b, 4), generator=generator)]
    top, left = cut[:, 0].clamp(max=max(h - 32, 0)), cut[:, 2].clamp(max=max(w - 32, 0))
    bottom = torch.minimum(cut[:, 1], h - 32 - top).clamp(min=0)
    right = torch.minimum(cut[:, 3], w - 32 - left).clamp(min=0)
    rows, cols = torch.arange(h), torch.arange(w)
    inside_rows = (rows >= top[:, None]) & (rows < h - bottom[:, None])
    inside_cols = (cols >= left[:, None]) & (cols < w - right[:, None])
    return (inside_rows[:, :, None] & inside_cols[:, None, :]).unsqueeze(1).float()


def mask_logits(outputs) -> torch.Tensor:
    return outputs["mask"] if isinstance(outputs, dict) else outputs


def frame_consistency(model: nn.Module, frames: FrameMask, image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference in probability, inside random boxes, between the network on
    the boxed input (zero outside the box) in its own frame and framed at the box: 0 for a
    network whose answer does not depend on where the zeros end."""
    region = random_boxes(image.shape).to(image.device, image.dtype)
    boxed = image * region
    free = torch.sigmoid(mask_logits(model(boxed)))
    with frames.framed(region):
        framed = torch.sigmoid(mask_logits(model(boxed)))
    return ((free - framed) ** 2 * region).sum() / region.sum().clamp(min=1)
