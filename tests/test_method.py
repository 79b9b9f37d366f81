"""The paper's method (Eq. 1-6, LFFGM, deployment) checked against hand-computed expectations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import strokeseg
from strokeseg.models.multitask import (
    LFFGM,
    DeepSupervision,
    LaplacianLoss,
    MultiTaskLoss,
    MultiTaskNet,
    SegmentLoss,
    build_loss,
    edge_target,
    soft_dice_loss,
)
from strokeseg.models.unetpp import UNetPlusPlus

VARIANTS = ["unetpp", "unetpp_edge", "unetpp_lffgm", "unetpp_mtl"]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_unetpp_has_the_official_parameter_count():
    # "Total params: 9,041,601" in the official Keras code (MrGiovanni/UNetPlusPlus).
    assert n_params(strokeseg.create_model("unetpp")) == 9_041_601


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_deploys_to_exactly_a_unetpp(name):
    reference = strokeseg.deploy(strokeseg.create_model("unetpp")).state_dict()
    deployed = strokeseg.deploy(strokeseg.create_model(name))
    state = deployed.state_dict()
    assert list(state) == list(reference)
    assert all(state[k].shape == reference[k].shape for k in reference)
    assert n_params(deployed) == 9_041_601
    plain = UNetPlusPlus()
    plain.load_state_dict(state, strict=True)


def test_deployed_variants_cost_exactly_the_flops_of_the_plain_unetpp():
    def flops(model: nn.Module) -> int:
        with torch.device("meta"), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 1, 224, 192))
        return counter.get_total_flops()

    with torch.device("meta"):
        plain = flops(UNetPlusPlus().eval())
        trained = strokeseg.create_model("unetpp_mtl")
        assert flops(strokeseg.deploy(trained)) == plain
        assert flops(trained.train()) > plain  # the LFFGM and edge head run in training only


class TinyBackbone(nn.Module):
    """Not a UNet++: only what the wrapper's documented contract asks of a backbone."""

    f_whole_channels, deepest_channels = 4, 6

    def __init__(self, deep: bool = False):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.down = nn.Conv2d(4, 6, 8, stride=8)
        self.head = nn.Conv2d(4, 1, 1)
        self.deep = deep

    def features(self, x: torch.Tensor) -> dict:
        f_whole = torch.relu(self.stem(x))
        features = {"f_whole": f_whole, "deepest": self.down(f_whole)}
        if self.deep:
            features["deep"] = [2 * self.head(f_whole)]
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)["f_whole"])


@pytest.mark.parametrize("aux", ["lffgm", "edge"])
def test_the_wrapper_takes_any_backbone_that_keeps_the_contract(aux):
    torch.manual_seed(0)
    backbone = TinyBackbone()
    model = MultiTaskNet(backbone, aux=aux).train()
    x = torch.randn(2, 1, 40, 40)  # the deepest map is 5x5: odd sizes
    seen = {}
    model.edge_head.register_forward_hook(lambda m, args, out: seen.update(f_edge=args[0]))
    out = model(x)
    features = backbone.features(x)
    f_whole = features["f_whole"]
    f_low = 0
    if aux == "lffgm":
        f_low = F.interpolate(
            model.lffgm(features["deepest"]), size=(40, 40), mode="bilinear", align_corners=False
        )
    torch.testing.assert_close(seen["f_edge"], f_whole - f_low)  # Eq. 1
    torch.testing.assert_close(out["mask"], backbone.head(f_whole))
    assert set(out) == {"mask", "edge"} and out["edge"].shape == (2, 1, 40, 40)
    build_loss("unetpp_mtl")(out, (x > 1).float())["loss"].backward()
    unused = () if aux == "lffgm" else ("backbone.down.weight", "backbone.down.bias")
    assert all((p.grad is None) == (n in unused) for n, p in model.named_parameters())
    deployed = strokeseg.deploy(model)
    assert type(deployed) is TinyBackbone
    assert deployed.state_dict().keys() == TinyBackbone().state_dict().keys()
    with torch.no_grad():
        assert torch.equal(model.eval()(x), backbone(x))


def test_the_wrapper_passes_on_the_backbones_own_training_outputs():
    model = MultiTaskNet(TinyBackbone(deep=True)).train()
    out = model(torch.randn(2, 1, 32, 32))
    assert set(out) == {"mask", "edge", "deep"}
    torch.testing.assert_close(out["deep"][0], 2 * out["mask"])


def test_deep_supervision_averages_a_loss_over_the_heads():
    def l1(logits, target):
        return (logits - target).abs().mean()

    target = torch.zeros(1, 1, 2, 2)
    heads = [torch.full((1, 1, 2, 2), v) for v in (1.0, 2.0, 6.0)]
    assert DeepSupervision(l1)(heads, target).item() == pytest.approx(3.0)
    assert DeepSupervision(l1)(heads[:1], target).item() == pytest.approx(1.0)


def test_training_model_has_the_auxiliary_branch_only_in_training():
    model = strokeseg.create_model("unetpp_mtl", width=0.125)
    assert n_params(model) > n_params(strokeseg.deploy(model))
    x = torch.randn(2, 1, 64, 64)
    assert set(model.train()(x)) == {"mask", "edge"}
    assert isinstance(model.eval()(x), torch.Tensor)


def test_deployed_output_equals_mask_output_after_training_steps():
    model = strokeseg.create_model("unetpp_mtl", width=0.125, norm="batch")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(2, 1, 64, 64)
    y = (torch.rand(2, 1, 64, 64) > 0.8).float()
    loss = build_loss("unetpp_mtl")
    for _ in range(2):
        optimizer.zero_grad()
        loss(model.train()(x), y)["loss"].backward()
        optimizer.step()
    deployed = strokeseg.deploy(model)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), deployed(x))


def test_all_parameters_including_lffgm_and_edge_head_get_gradients():
    model = strokeseg.create_model("unetpp_mtl", width=0.125).train()
    x = torch.randn(2, 1, 64, 64)
    y = (torch.rand(2, 1, 64, 64) > 0.8).float()
    build_loss("unetpp_mtl")(model(x), y)["loss"].backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert any(n.startswith("lffgm.") for n in grads) and "edge_head.weight" in grads
    assert all(g is not None and g.abs().sum() > 0 for g in grads.values())


@pytest.mark.parametrize(
    ("deepest_hw", "expected"),
    [
        ((14, 12), [(7, 6), (3, 3), (7, 6), (14, 12)]),  # 224x192 input
        ((13, 11), [(6, 5), (3, 2), (6, 5), (13, 11)]),  # 208x176 input: odd sizes
    ],
)
def test_lffgm_intermediate_shapes(deepest_hw, expected):
    lffgm = LFFGM(in_channels=512, out_channels=32, hidden=32)
    shapes = []
    for block in (lffgm.down1, lffgm.down2, lffgm.up1, lffgm.up2):
        block.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    out = lffgm(torch.randn(1, 512, *deepest_hw))
    assert shapes == [(1, 32, *hw) for hw in expected]
    assert out.shape == (1, 32, *deepest_hw)


@pytest.mark.parametrize("size", [(224, 192), (208, 176)])
def test_f_low_has_f_whole_shape_and_f_edge_is_their_difference(size):
    model = strokeseg.create_model("unetpp_mtl", width=0.125).train()
    seen = {}
    model.edge_head.register_forward_hook(lambda m, i, o: seen.__setitem__("f_edge", i[0]))
    model.backbone.head.register_forward_hook(lambda m, i, o: seen.__setitem__("f_whole", i[0]))
    model.lffgm.register_forward_hook(lambda m, i, o: seen.__setitem__("lffgm_out", o))
    x = torch.randn(1, 1, *size)
    model(x)
    f_whole = seen["f_whole"]
    assert f_whole.shape == (1, 4, *size)
    f_low = torch.nn.functional.interpolate(
        seen["lffgm_out"], size=size, mode="bilinear", align_corners=False
    )
    assert f_low.shape == f_whole.shape
    torch.testing.assert_close(seen["f_edge"], f_whole - f_low)


def test_simple_edge_head_reads_f_whole_directly():
    model = strokeseg.create_model("unetpp_edge", width=0.125).train()
    assert model.lffgm is None
    seen = {}
    model.edge_head.register_forward_hook(lambda m, i, o: seen.__setitem__("edge_in", i[0]))
    model.backbone.head.register_forward_hook(lambda m, i, o: seen.__setitem__("mask_in", i[0]))
    model(torch.randn(1, 1, 64, 64))
    assert torch.equal(seen["edge_in"], seen["mask_in"])


def test_edge_target_of_a_square_is_its_two_pixel_band():
    mask = torch.zeros(1, 1, 10, 10)
    mask[..., 3:7, 3:7] = 1
    expected = torch.zeros(1, 1, 10, 10)
    expected[..., 2:8, 2:8] = 1  # one pixel outside the square ...
    expected[..., 4:6, 4:6] = 0  # ... and one pixel inside it
    assert torch.equal(edge_target(mask), expected)
    wide = edge_target(mask, radius=2)  # band of two pixels each side
    assert wide.sum() == 8 * 8 - 0  # square 4x4 eroded by 2 is empty; dilated by 2 is 8x8


def test_edge_target_ignores_the_image_border():
    mask = torch.ones(1, 1, 6, 6)
    assert edge_target(mask).sum() == 0


def test_dice_and_bce_on_a_hand_computed_case():
    logits = torch.zeros(1, 1, 2, 2)  # p = 0.5 everywhere
    target = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    # Dice = 2 * (0.5 + 0.5) / (2 + 2) = 0.5; BCE = -log(0.5) at every pixel.
    assert soft_dice_loss(logits, target).item() == pytest.approx(0.5, abs=1e-5)
    segment = SegmentLoss(alpha=1.0, beta=1.0)(logits, target)
    assert segment.item() == pytest.approx(0.5 + math.log(2), abs=1e-5)
    weighted = SegmentLoss(alpha=2.0, beta=0.5)(logits, target)
    assert weighted.item() == pytest.approx(2 * 0.5 + 0.5 * math.log(2), abs=1e-5)


def test_dice_loss_uses_the_whole_batch():
    # p = 0.75 on a batch of two: one image all lesion, one all background.
    logits = torch.full((2, 1, 2, 2), math.log(3.0))
    target = torch.zeros(2, 1, 2, 2)
    target[0] = 1
    # intersection 4 * 0.75 = 3, sum p = 8 * 0.75 = 6, sum y = 4: 1 - 6 / 10
    assert soft_dice_loss(logits, target).item() == pytest.approx(0.4, abs=1e-5)


def test_laplacian_loss_of_a_perfect_prediction_is_zero():
    target = torch.zeros(1, 1, 8, 8)
    target[..., 2:5, 3:7] = 1
    logits = (target * 2 - 1) * 100  # sigmoid saturates to exactly 0/1
    assert LaplacianLoss()(logits, target).item() == pytest.approx(0.0, abs=1e-7)


def test_laplacian_loss_on_a_hand_made_5x5_case():
    # p = 0.5 everywhere; y = one lesion pixel in the centre. With zero padding,
    # Lap(p) = -1 at the 4 corners, -0.5 at the 12 other border pixels, 0 inside;
    # Lap(y) = -4 at the centre and +1 at its 4 neighbours. Sum |diff| = 4 + 6 + 4 + 4 = 18.
    target = torch.zeros(1, 1, 5, 5)
    target[..., 2, 2] = 1
    assert LaplacianLoss()(torch.zeros(1, 1, 5, 5), target).item() == pytest.approx(18 / 25)


def test_laplacian_kernel_is_fixed():
    loss = LaplacianLoss()
    assert not list(loss.parameters())


def test_total_loss_is_the_weighted_sum_of_eq_6():
    torch.manual_seed(1)
    outputs = {"mask": torch.randn(2, 1, 16, 16), "edge": torch.randn(2, 1, 16, 16)}
    y = torch.zeros(2, 1, 16, 16)
    y[:, :, 4:10, 5:12] = 1
    seg, lap = SegmentLoss(), LaplacianLoss()
    expected = (
        2.0 * seg(outputs["mask"], y)
        + 3.0 * seg(outputs["edge"], edge_target(y))
        + 7.0 * lap(outputs["mask"], y)
    )
    got = MultiTaskLoss(gamma=2.0, lam=3.0, delta=7.0)(outputs, y)
    torch.testing.assert_close(got["loss"], expected)
    assert set(got) == {"loss", "loss_mask", "loss_edge", "loss_lap"}


def test_delta_warmup_ramps_the_laplacian_weight_from_zero(monkeypatch):
    from strokeseg.training.config import load_config
    from strokeseg.training.module import SegmentationModule

    overrides = ["model.kwargs.width=0.125", "loss.delta=7.0", "loss.delta_warmup=0.25"]
    module = SegmentationModule(load_config(None, overrides))
    state = {"global_step": 0}
    trainer = type("T", (), {"estimated_stepping_batches": 400})()
    monkeypatch.setattr(SegmentationModule, "trainer", property(lambda self: trainer))
    monkeypatch.setattr(SegmentationModule, "global_step", property(lambda s: state["global_step"]))
    scales = []
    for step in (0, 50, 100, 300):  # the warm-up lasts a quarter of 400 steps
        state["global_step"] = step
        scales.append(module.warmup_scale())
    assert scales == [0.0, 0.5, 1.0, 1.0]

    torch.manual_seed(1)
    outputs = {"mask": torch.randn(2, 1, 16, 16), "edge": torch.randn(2, 1, 16, 16)}
    y = torch.zeros(2, 1, 16, 16)
    y[:, :, 4:10, 5:12] = 1
    got = module.criterion(outputs, y, delta_weight=0.5)
    expected = got["loss_mask"] + got["loss_edge"] + 3.5 * LaplacianLoss()(outputs["mask"], y)
    torch.testing.assert_close(got["loss"], expected)


@pytest.mark.parametrize(
    ("name", "terms"),
    [
        ("unetpp", {"loss", "loss_mask"}),
        ("unetpp_edge", {"loss", "loss_mask", "loss_edge"}),
        ("unetpp_lffgm", {"loss", "loss_mask", "loss_edge"}),
        ("unetpp_mtl", {"loss", "loss_mask", "loss_edge", "loss_lap"}),
    ],
)
def test_each_ablation_variant_trains_with_its_own_loss_terms(name, terms):
    model = strokeseg.create_model(name, width=0.125).train()
    y = torch.zeros(2, 1, 64, 64)
    y[..., 20:30, 20:40] = 1
    assert set(build_loss(name)(model(torch.randn(2, 1, 64, 64)), y)) == terms


def test_unetpp_rejects_sizes_not_divisible_by_16():
    with pytest.raises(ValueError, match="divisible by 16"):
        strokeseg.create_model("unetpp", width=0.125)(torch.randn(1, 1, 60, 64))


def test_lffgm_names_the_minimum_input_size():
    model = strokeseg.create_model("unetpp_mtl", width=0.125).train()
    with pytest.raises(ValueError, match="at least 64x64"):
        model(torch.randn(2, 1, 48, 48))
