"""UNet++ pruned at inference: "UNet++ L1-L4" of Zhou et al. (DLMIA 2018, section 2).

A UNet++ trained with deep supervision has a mask head on each of X(0,1)..X(0,4). Cut at
level k, the network keeps only the nodes X(i, j) with i + j <= k (the sub-network that
X(0,k) depends on) and answers with the deep-supervision head of X(0,k). Level 4 is the whole
UNet++; level 1 runs 3 of its 15 nodes. The nodes and heads are the trained ones, shared in a
copy, so the pruned output equals the full network's X(0,k) head exactly.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from strokeseg.models.blocks import require_multiple
from strokeseg.models.unetpp import DEPTH, UNetPlusPlus

LEVELS = tuple(range(1, DEPTH))


def needed_nodes(level: int) -> list[tuple[int, int]]:
    """Nodes X(i, j) that X(0, level) depends on: i + j <= level."""
    return [(i, j) for j in range(level + 1) for i in range(level + 1 - j)]


class PrunedUNetPlusPlus(nn.Module):
    """UNet++ L``level``: the nodes X(i, j), i + j <= level, and the head of X(0, level)."""

    def __init__(self, network: UNetPlusPlus, level: int):
        super().__init__()
        if level not in LEVELS[:-1]:
            raise ValueError(f"pruning level {level}: must be 1, 2 or 3 (4 is the plain UNet++)")
        if network.ds_heads is None:
            raise ValueError(
                f"pruning level {level} needs the deep-supervision head of X(0,{level}): "
                "train with model.kwargs.deep_supervision true"
            )
        self.level = level
        self.pool = nn.MaxPool2d(2)
        nodes = needed_nodes(level)
        self.nodes = nn.ModuleDict({f"x{i}_{j}": network.nodes[f"x{i}_{j}"] for i, j in nodes})
        self.ups = nn.ModuleDict(
            {f"up{i}_{j}": network.ups[f"up{i}_{j}"] for i, j in nodes if j > 0}
        )
        self.head = network.ds_heads[level - 1]  # heads of X(0,1)..X(0,3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        require_multiple(x, 16, "UNet++")
        k = self.level
        grid: list[list[torch.Tensor]] = [[] for _ in range(k + 1)]
        for i in range(k + 1):
            grid[i].append(self.nodes[f"x{i}_0"](x if i == 0 else self.pool(grid[i - 1][0])))
        for j in range(1, k + 1):
            for i in range(k + 1 - j):
                up = self.ups[f"up{i}_{j}"](grid[i + 1][j - 1])
                grid[i].append(self.nodes[f"x{i}_{j}"]([*grid[i][:j], up]))
        return self.head(grid[0][k])


def prune(network: nn.Module, level: int) -> nn.Module:
    """An independent pruned copy (eval mode) of a UNet++ inference network."""
    if not isinstance(network, UNetPlusPlus):
        raise ValueError(f"pruning levels are for UNet++ only, not {type(network).__name__}")
    return PrunedUNetPlusPlus(copy.deepcopy(network), level).eval()
