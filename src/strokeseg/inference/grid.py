"""The grid a network is evaluated on: the one it was trained on (rule in docs/data.md).

Convolutional networks (UNet, UNet++, SegNet, DeepLabv3+, X-Net, CLCI-Net, Attention UNet)
compute the same function of each pixel's neighbourhood at any input size that is a multiple
of 16, so they run on the crop boxes of ``data/crop.py``. Two networks do not:

- Swin-Unet pads its input to whole windows (multiples of 224): a 240x208 slice is run as
  448x224, twice the work and a padding it never saw in training;
- TransUNet adds a learned position embedding per token of its training grid, resized for
  any other grid.

These are ``grid_bound`` (a class attribute) and are run on exactly their training grid:
each box is grown to it (``data.crop.fit_grid``), and a box larger than the grid is covered by
windows of the grid (MONAI's ``sliding_window_inference``, 25 % overlap, logits averaged).

The training grid is the checkpoint's ``slice_grid`` (H, W) (``TrainingData`` in
``data/preprocessing.py``), which training records from its batches; checkpoints written
before that have the patch size of their config, or, for whole-slice training, the scan's own
training-time slicing (``to_slices``: each in-plane size rounded down to a multiple of 16),
which is the training grid for scans of the training data's shape.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from strokeseg.data.slices import target_size

OVERLAP = 0.25


def training_grid(
    slice_grid: tuple[int, int] | None, shape_ras: tuple[int, int, int]
) -> tuple[int, int]:
    """(H, W) the checkpoint's network was trained on: its recorded ``slice_grid``, else the
    training-time slicing of a scan of ``shape_ras`` (module docstring)."""
    if slice_grid:
        return slice_grid
    return target_size(shape_ras[1]), target_size(shape_ras[0])


def is_grid_bound(network: nn.Module) -> bool:
    """Whether ``network`` must run on its training grid (Swin-Unet, TransUNet)."""
    return bool(getattr(network, "grid_bound", False))


def on_grid(
    run: Callable[[torch.Tensor], torch.Tensor], grid: tuple[int, int]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``run`` applied only to (H, W) = ``grid`` inputs; larger inputs by sliding windows."""

    def windows(x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) == tuple(grid):
            return run(x)
        from monai.inferers import sliding_window_inference

        with torch.inference_mode():  # MONAI blends the windows in place
            return sliding_window_inference(
                x, grid, sw_batch_size=x.shape[0], predictor=run, overlap=OVERLAP, mode="constant"
            )

    return windows
