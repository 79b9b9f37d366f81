"""Run networks over the boxes of a slice plan: the inner loop of the slice engine.

Kept apart from ``engine.py`` so the crop (``data/crop.py``), the runtimes
(``runtime.py``) and the grid rule (``grid.py``) meet in one place: a plan says which slices
and boxes to segment, the runs say how, and the probabilities are pasted back into a volume
that is 0 outside every box.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from strokeseg.data.crop import SlicePlan, crop_plan, inside
from strokeseg.data.intensity import normalize
from strokeseg.data.mirror import with_mirror
from strokeseg.inference.grid import is_grid_bound, on_grid, training_grid

Run = Callable[[torch.Tensor], torch.Tensor]


def run_plan(
    runs: Sequence[Run],
    image: np.ndarray,
    plan: SlicePlan,
    *,
    context_slices: int = 0,
    flips: Sequence[tuple[int, ...]] = ((),),
    batch_size: int = 8,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Mean probability over ``runs`` and ``flips`` (dims of a (B, C, H, W) batch), RAS;
    ``image`` is (X, Y, Z), or (M, X, Y, Z) for M input volumes (``SlicePlan.extract``)."""
    total = np.zeros(plan.shape, dtype=np.float32)
    for rows in plan.groups(batch_size):
        x = torch.from_numpy(plan.extract(image, rows, context_slices)).to(device)
        p = torch.zeros((len(rows), *x.shape[-2:]), dtype=torch.float32, device=device)
        for run in runs:
            for dims in flips:
                logits = run(torch.flip(x, dims) if dims else x).float()
                p += torch.sigmoid(torch.flip(logits, dims) if dims else logits)[:, 0]
        plan.paste(total, rows, (p / (len(runs) * len(flips))).cpu().numpy())
    return total


def on_training_grids(
    runs: Sequence[Run], networks: Sequence[nn.Module], metas: Sequence[dict], shape_ras
) -> tuple[list[Run], tuple[int, int] | None]:
    """Grid-bound members restricted to their training grid (``grid.py``) for one scan.

    Returns the runs and the grid that boxes must be grown to (the largest training grid of
    the grid-bound members; None if there are none).
    """
    out, grids = [], []
    for run, network, meta in zip(runs, networks, metas, strict=True):
        if is_grid_bound(network):
            grids.append(training_grid(meta, shape_ras))
            run = on_grid(run, grids[-1])
        out.append(run)
    grid = (max(g[0] for g in grids), max(g[1] for g in grids)) if grids else None
    return out, grid


def scan_probabilities(
    runs: Sequence[Run],
    networks: Sequence[nn.Module],
    metas: Sequence[dict],
    volume,
    modality: str,
    window: str = "brain",
    *,
    crop: bool = True,
    zero_outside_crop: bool = False,
    context_slices: int = 0,
    mirror: bool = False,
    flips: Sequence[tuple[int, ...]] = ((),),
    batch_size: int = 8,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Lesion probability of a whole ``volume`` (RAS, 0 outside the crop): normalise, plan the
    boxes (``crop=False``: the exact whole-volume path), run, paste back.

    ``zero_outside_crop`` (a model trained so): the input and the output are 0 outside the
    crop's boxes on every path, as in training (``data/crop.py``). ``mirror`` (a model trained
    so): the input's left-right mirror feeds more channels (``data/mirror.py``)."""
    runs, grid = on_training_grids(runs, networks, metas, volume.data.shape)
    plan = crop_plan(volume.data, volume.affine, modality, crop=crop, grid=grid)
    image = normalize(volume.data, modality, window)
    if zero_outside_crop:
        kept_plan = (
            plan if crop and grid is None else crop_plan(volume.data, volume.affine, modality)
        )
        kept = inside(kept_plan)
        image *= kept
    probability = run_plan(
        runs,
        with_mirror(image, volume, mirror),
        plan,
        context_slices=context_slices,
        flips=flips,
        batch_size=batch_size,
        device=device,
    )
    if zero_outside_crop:
        probability *= kept
    return probability
