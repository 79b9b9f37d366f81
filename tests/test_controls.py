"""The control rows beside Table 2: a boundary-weighted BCE on UNet++ (no second head) and the
Laplacian loss (Eq. 5) on UNet++ without the edge branch, against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from strokeseg.jobs.benchmark_rows import CONTROLS, profile_overrides, row_configs
from strokeseg.models.multitask import (
    BoundaryWeightedLoss,
    MultiTaskLoss,
    build_loss,
    edge_target,
)
from strokeseg.training.config import load_config
from strokeseg.training.module import SegmentationModule


def block_case():
    """A 6x6 mask holding a 2x2 lesion at rows and columns 2-3; its edge band (pixels whose
    3x3 neighbourhood holds lesion and background) is the 4x4 square at rows and columns 1-4."""
    y = torch.zeros(1, 1, 6, 6)
    y[..., 2:4, 2:4] = 1
    band = torch.zeros(1, 1, 6, 6)
    band[..., 1:5, 1:5] = 1
    logits = torch.where(y > 0, 2.0, -1.0)  # lesion at logit 2, background at -1
    return logits, y, band


def softplus(x: float) -> float:
    return math.log(1 + math.exp(x))


def test_boundary_weighted_bce_by_hand():
    logits, y, _ = block_case()
    # BCE per pixel: lesion (y = 1, x = 2) log(1 + e^-2); background (y = 0, x = -1) log(1 + e^-1).
    # 4 lesion pixels and 12 background pixels lie on the band (weight 1 + 10), 20 off it.
    lesion, background = softplus(-2.0), softplus(-1.0)
    bce = (11 * (4 * lesion + 12 * background) + 20 * background) / 36
    # soft Dice on the same probabilities: p = sigmoid(2) on the lesion, sigmoid(-1) elsewhere
    p_in, p_out = 1 / (1 + math.exp(-2)), 1 / (1 + math.exp(1))
    smooth = 1e-5
    dice = 1 - (2 * 4 * p_in + smooth) / (4 * p_in + 32 * p_out + 4 + smooth)
    got = BoundaryWeightedLoss(10.0)(logits, y)
    assert float(got) == pytest.approx(dice + bce, rel=1e-6)
    # weight 0 is Eq. 2's plain mean BCE
    plain = (4 * lesion + 32 * background) / 36
    assert float(BoundaryWeightedLoss(0.0)(logits, y)) == pytest.approx(dice + plain, rel=1e-6)


def test_boundary_weight_reaches_the_mask_head_and_not_the_edge_head():
    logits, y, band = block_case()
    edge_logits = torch.zeros_like(logits)
    loss = MultiTaskLoss(boundary_weight=10.0, laplacian=False)
    got = loss({"mask": logits, "edge": edge_logits}, y)
    assert float(got["loss_mask"]) == pytest.approx(float(BoundaryWeightedLoss(10.0)(logits, y)))
    # the edge head keeps Eq. 2: at logit 0 its BCE is ln 2 everywhere and its soft Dice
    # 1 - (2 * 0.5 * 16) / (0.5 * 36 + 16) on the 16-pixel band
    smooth = 1e-5
    edge = math.log(2) + 1 - (16 + smooth) / (18 + 16 + smooth)
    assert float(got["loss_edge"]) == pytest.approx(edge, rel=1e-6)
    assert torch.equal(edge_target(y), band)  # the band the hand values above assume


def test_laplacian_loss_without_an_edge_branch_by_hand():
    _, y, _ = block_case()
    logits = torch.zeros_like(y)  # p = 0.5 everywhere
    # Lap(y) (4-neighbour, zero outside): -2 on the 4 lesion pixels, +1 on the 8 pixels that
    # touch the block by a side, 0 elsewhere. Lap(p) of the constant 0.5: 0 inside, -0.5 on the
    # 16 border pixels that are not corners, -1 on the 4 corners. The block and its neighbours
    # lie inside, so sum |Lap(p) - Lap(y)| = 4 * 2 + 8 * 1 + 16 * 0.5 + 4 * 1 = 28.
    lap = 28 / 36
    smooth = 1e-5
    mask = math.log(2) + 1 - (4 + smooth) / (18 + 4 + smooth)
    got = build_loss("unetpp", laplacian=True)(logits, y)
    assert set(got) == {"loss", "loss_mask", "loss_lap"}
    assert float(got["loss_lap"]) == pytest.approx(lap, rel=1e-6)
    assert float(got["loss"]) == pytest.approx(mask + 10 * lap, rel=1e-6)


def test_the_loss_setting_switches_eq_5_whatever_the_model():
    def eq5(model_name, laplacian=None):
        return build_loss(model_name, laplacian).loss_lap is not None

    assert (eq5("unetpp"), eq5("unetpp_mtl")) == (False, True)
    assert eq5("unetpp", laplacian=True)
    assert not eq5("unetpp_mtl", laplacian=False)


@pytest.mark.parametrize("modality", ["mri", "ct"])
def test_control_rows_train_unetpp_with_their_loss(modality):
    rows = row_configs(2, modality, ["unetpp", *CONTROLS[2]])
    assert [r for r, _ in rows] == ["unetpp", "unetpp_boundary_bce", "unetpp_laplacian"]
    configs = {row: load_config(path) for row, path in rows}
    assert {c.model.name for c in configs.values()} == {"unetpp"}  # one head, no edge branch
    assert configs["unetpp_boundary_bce"].loss.boundary_weight == 10.0
    assert configs["unetpp_laplacian"].loss.laplacian is True
    for row, config in configs.items():
        module = SegmentationModule(load_config(dict(rows)[row], ["model.kwargs.width=0.125"]))
        assert (module.criterion.loss_lap is not None) == (row == "unetpp_laplacian")
        boundary = isinstance(module.criterion.loss_mask.loss, BoundaryWeightedLoss)
        assert boundary == (row == "unetpp_boundary_bce")
        # the cpu profile applies to a control as to the UNet++ row it is built on
        cpu = load_config(dict(rows)[row], profile_overrides("cpu", config.model.name))
        assert cpu.model.kwargs["norm"] == "batch" and cpu.loss.delta_warmup == 0.25
        assert cpu.loss.boundary_weight == config.loss.boundary_weight
