"""The convolutional baselines: exact parameter counts at paper size, against BASELINES.md's
[computed] values, torchvision's published ResNet count and hand formulas; and the structural
properties (output stride, dilations, unpooling sizes, gating) each paper relies on."""

from __future__ import annotations

import pytest
import torch

import strokeseg
from strokeseg.models.attention_unet import AttentionGate
from strokeseg.models.deeplabv3plus import DeepLabV3Plus
from strokeseg.models.resnet import ResNet

# BASELINES.md [computed], 1 input channel, 1 output channel, width 1.0.
REFERENCE = {
    "segnet": 29_442_433,
    "attention_unet": 34_877_421,
    "deeplabv3plus": 59_332_897,
}
UNET_NO_BN = 31_030_593  # BASELINES.md: the paper's U-Net (no BatchNorm), padded
# torchvision resnet101 / resnet50 (3-channel stem, 1000-way FC), as published.
TORCHVISION_RESNET = {(3, 4, 23, 3): 44_549_160, (3, 4, 6, 3): 25_557_032}
FC = 2048 * 1000 + 1000


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def unet_by_hand(f: list[int], c_in: int, c_out: int, bn: bool) -> int:
    """U-Net parameters from the layer list: 3x3 convs with bias (+ BN), 2x2 tconvs, 1x1 head."""

    def conv(k: int, a: int, b: int) -> int:
        return k * k * a * b + b + (2 * b if bn and k == 3 else 0)

    total = conv(3, c_in, f[0]) + conv(3, f[0], f[0])
    for i in range(1, 5):
        total += conv(3, f[i - 1], f[i]) + conv(3, f[i], f[i])
    for i in range(4):
        total += conv(2, f[i + 1], f[i]) + conv(3, 2 * f[i], f[i]) + conv(3, f[i], f[i])
    return total + conv(1, f[0], c_out)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_paper_size_matches_reference_count(name):
    assert n_params(strokeseg.create_model(name)) == REFERENCE[name]


def test_unet_counts_with_and_without_batchnorm():
    paper = [64, 128, 256, 512, 1024]
    plain = strokeseg.create_model("unet", batch_norm=False)
    assert n_params(plain) == UNET_NO_BN == unet_by_hand(paper, 1, 1, bn=False)
    # Default (BN after every 3x3 conv): 2 affine parameters per BN channel.
    bn_channels = 2 * sum(paper) + 2 * sum(paper[:4])
    assert n_params(strokeseg.create_model("unet")) == UNET_NO_BN + 2 * bn_channels


def test_width_scales_every_unet_layer():
    model = strokeseg.create_model("unet", in_channels=2, out_channels=3, width=0.5)
    assert n_params(model) == unet_by_hand([32, 64, 128, 256, 512], 2, 3, bn=True)


@pytest.mark.parametrize("layers", sorted(TORCHVISION_RESNET))
def test_resnet_backbone_matches_torchvision_count(layers):
    # Same network as torchvision without its classifier; a 1-channel stem saves 2*64*7*7.
    assert n_params(ResNet(3, layers)) == TORCHVISION_RESNET[layers] - FC
    assert n_params(ResNet(1, layers)) == TORCHVISION_RESNET[layers] - FC - 2 * 64 * 49


def test_deeplab_other_reference_counts():
    assert n_params(DeepLabV3Plus(layers=(3, 4, 6, 3))) == 40_340_769  # R50, BASELINES.md
    assert n_params(DeepLabV3Plus(3, 21)) == 59_344_309  # R101, 3 in / 21 classes


@pytest.mark.parametrize(
    ("output_stride", "grid", "stage3", "stage4", "rates"),
    [(16, 4, 1, (2, 4, 8), (6, 12, 18)), (8, 8, 2, (4, 8, 16), (12, 24, 36))],
)
def test_deeplab_output_stride_dilations_and_rates(output_stride, grid, stage3, stage4, rates):
    model = DeepLabV3Plus(width=0.125, output_stride=output_stride).eval()
    stages = model.backbone.stages
    assert {blk.body[3].dilation[0] for blk in stages[2]} == {stage3}
    assert tuple(blk.body[3].dilation[0] for blk in stages[3]) == stage4
    assert tuple(b[0].dilation[0] for b in model.aspp.branches[1:]) == rates
    with torch.no_grad():
        deep, low = model.backbone(torch.randn(1, 1, 64, 64))
    assert deep.shape[-2:] == (64 // output_stride,) * 2
    assert low.shape[-2:] == (16, 16)
    assert deep.shape[1] == 4 * 64 and low.shape[1] == 4 * 8  # 2048 and 256 at width 1/8


def test_resnet_rejects_bad_settings():
    with pytest.raises(ValueError, match="output_stride"):
        ResNet(output_stride=32)
    with pytest.raises(ValueError, match="multi-grid"):
        ResNet(multi_grid=(1, 2))


def test_segnet_restores_odd_sizes_through_unpooling():
    # Caffe-style ceil pooling: 90x70 -> 45x35 -> 23x18 -> 12x9 -> 6x5 -> 3x3 and back.
    model = strokeseg.create_model("segnet", width=0.125).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 90, 70)).shape == (1, 1, 90, 70)


@pytest.mark.parametrize("name", ["unet", "attention_unet"])
def test_unets_reject_sizes_not_divisible_by_16(name):
    model = strokeseg.create_model(name, width=0.125).eval()
    with pytest.raises(ValueError, match="divisible by 16"):
        model(torch.randn(1, 1, 72, 64))


def test_attention_gate_only_attenuates_the_skip():
    gate = AttentionGate(6, 4, 2).eval()
    x, g = torch.randn(2, 4, 8, 8), torch.randn(2, 6, 8, 8)
    with torch.no_grad():
        ratio = gate(g, x) / x
    # One weight in (0, 1) per pixel, shared by all channels of x.
    assert ((ratio > 0) & (ratio < 1)).all()
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["unet", "segnet", "attention_unet", "deeplabv3plus"])
def test_paper_size_forward_on_atlas_and_ct_sizes(name):
    model = strokeseg.create_model(name).eval()
    for size in [(224, 192), (512, 512)]:
        with torch.no_grad():
            y = model(torch.randn(1, 1, *size))
        assert y.shape == (1, 1, *size) and torch.isfinite(y).all()
