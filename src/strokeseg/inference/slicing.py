"""Run networks over the boxes of a slice plan: the inner loop of the slice engine.

Kept apart from ``engine.py`` so the crop (``data/crop.py``), the runtimes
(``runtime.py``) and the grid rule (``grid.py``) meet in one place: a plan says which slices
and boxes to segment, the runs say how, and the probabilities are pasted back into a volume
that is 0 outside every box.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from strokeseg.data.crop import SlicePlan, fit_grid, whole_plan
from strokeseg.data.preprocessing import PreparedScan
from strokeseg.inference.grid import is_grid_bound, on_grid, training_grid

Run = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Batching:
    """How a plan's slices go through the runs: the flips averaged (dims of a (B, C, H, W)
    batch), slices per pass, and the device the batches are put on."""

    flips: Sequence[tuple[int, ...]] = ((),)
    batch_size: int = 8
    device: torch.device | str = "cpu"


def run_plan(
    runs: Sequence[Run],
    image: np.ndarray,
    plan: SlicePlan,
    context_slices: int = 0,
    batching: Batching = Batching(),
) -> np.ndarray:
    """Mean probability over ``runs`` and the flips, RAS; ``image`` is (X, Y, Z), or
    (M, X, Y, Z) for M input volumes (``SlicePlan.extract``)."""
    flips, device = batching.flips, batching.device
    total = np.zeros(plan.shape, dtype=np.float32)
    for rows in plan.groups(batching.batch_size):
        x = torch.from_numpy(plan.extract(image, rows, context_slices)).to(device)
        p = torch.zeros((len(rows), *x.shape[-2:]), dtype=torch.float32, device=device)
        for run in runs:
            for dims in flips:
                logits = run(torch.flip(x, dims) if dims else x).float()
                p += torch.sigmoid(torch.flip(logits, dims) if dims else logits)[:, 0]
        plan.paste(total, rows, (p / (len(runs) * len(flips))).cpu().numpy())
    return total


def on_training_grids(
    runs: Sequence[Run], networks: Sequence[nn.Module], slice_grid, shape_ras
) -> tuple[list[Run], tuple[int, int] | None]:
    """Grid-bound members restricted to the training grid (``grid.py``) for one scan.

    Returns the runs and the grid that boxes must be grown to (None if no member is
    grid-bound).
    """
    grid = training_grid(slice_grid, shape_ras)
    bound = [is_grid_bound(network) for network in networks]
    runs = [on_grid(run, grid) if b else run for run, b in zip(runs, bound, strict=True)]
    return runs, grid if any(bound) else None


def scan_probabilities(
    runs: Sequence[Run],
    networks: Sequence[nn.Module],
    scan: PreparedScan,
    *,
    crop: bool = True,
    slice_grid: tuple[int, int] | None = None,
    batching: Batching = Batching(),
) -> np.ndarray:
    """Lesion probability of a whole prepared ``scan`` (RAS, 0 outside the plan's boxes): the
    crop's boxes (``crop=False``: the exact whole-volume path), grown to the training grid
    ``slice_grid`` of grid-bound networks, run, pasted back.

    A model trained with ``zero_outside_crop`` sees its input, and gives its output, 0 outside
    the crop's boxes on every path, as in training (``data/crop.py``); with ``mirror``, the
    input's left-right mirror feeds more channels (``data/mirror.py``)."""
    runs, grid = on_training_grids(runs, networks, slice_grid, scan.image.shape)
    plan = scan.plan if crop else whole_plan(scan.image.shape)
    plan = fit_grid(plan, grid) if grid is not None else plan
    context = scan.preprocessing.context_slices
    probability = run_plan(runs, scan.network_input(), plan, context, batching)
    if scan.preprocessing.zero_outside_crop:
        probability *= scan.kept
    return probability
