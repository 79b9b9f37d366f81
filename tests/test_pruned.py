"""UNet++ L1-L4: the pruned network is the full network's X(0,k) deep-supervision head."""

from __future__ import annotations

import functools

import pytest
import torch

import strokeseg
from strokeseg.models.pruned import PrunedUNetPlusPlus, needed_nodes


@functools.lru_cache
def trained_like(name: str = "unetpp_mtl") -> torch.nn.Module:
    """A deep-supervision UNet++ with BatchNorm statistics moved off their initial values
    (shared between tests: ``deploy`` copies it)."""
    torch.manual_seed(0)
    model = strokeseg.create_model(name, width=0.125, norm="batch", deep_supervision=True)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(2, 1, 128, 128))  # LFFGM needs 128x128
    return model


def full_grid_head(model: torch.nn.Module, x: torch.Tensor, level: int) -> torch.Tensor:
    """The X(0, level) head computed through the whole (unpruned) network."""
    backbone = model.inference_network() if hasattr(model, "inference_network") else model
    backbone.eval()
    with torch.inference_mode():
        grid = backbone.grid(x)
        if level == 4:
            return backbone.head(grid[0][4])
        return backbone.ds_heads[level - 1](grid[0][level])


@pytest.mark.parametrize("level", [1, 2, 3])
@pytest.mark.parametrize("name", ["unetpp", "unetpp_mtl"])
def test_pruned_output_is_the_x0k_head(name, level):
    model = trained_like(name)
    x = torch.randn(2, 1, 48, 64)
    pruned = strokeseg.deploy(model, level=level)
    with torch.inference_mode():
        got = pruned(x)
    torch.testing.assert_close(got, full_grid_head(model, x, level), rtol=0, atol=1e-6)


@pytest.mark.parametrize("level", [1, 2, 3])
def test_pruned_runs_only_the_nodes_it_needs(level):
    pruned = strokeseg.deploy(trained_like(), level=level)
    ran: list[str] = []
    for name, node in pruned.nodes.items():
        node.register_forward_hook(lambda *_, name=name: ran.append(name))
    with torch.inference_mode():
        pruned(torch.randn(1, 1, 32, 32))
    expected = {f"x{i}_{j}" for i in range(5) for j in range(5) if i + j <= level}
    assert sorted(ran) == sorted(expected)
    assert len(needed_nodes(level)) == (level + 1) * (level + 2) // 2
    full = sum(p.numel() for p in strokeseg.deploy(trained_like()).parameters())
    assert sum(p.numel() for p in pruned.parameters()) < full


def test_level_4_is_exactly_the_plain_deployed_unetpp():
    model = trained_like()
    deployed, level4 = strokeseg.deploy(model), strokeseg.deploy(model, level=4)
    assert type(level4) is type(deployed) and level4.ds_heads is None
    assert level4.state_dict().keys() == deployed.state_dict().keys()
    x = torch.randn(1, 1, 32, 48)
    with torch.inference_mode():
        torch.testing.assert_close(level4(x), full_grid_head(model, x, 4), rtol=0, atol=0)


def test_pruning_refused_without_deep_supervision_or_for_other_models():
    plain = strokeseg.create_model("unetpp", width=0.125)
    with pytest.raises(ValueError, match="deep_supervision"):
        strokeseg.deploy(plain, level=2)
    with pytest.raises(ValueError, match="UNet\\+\\+ only"):
        strokeseg.deploy(strokeseg.create_model("unet", width=0.125), level=2)
    with pytest.raises(ValueError, match="must be 1, 2 or 3"):
        PrunedUNetPlusPlus(trained_like().backbone, 5)
