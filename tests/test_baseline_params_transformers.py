"""TransUNet, Swin-Unet, X-Net and CLCI-Net: exact parameter counts against the counts of their
official code (shared/BASELINES.md), and the layer semantics the ports depend on."""

from __future__ import annotations

import functools
import math

import pytest
import torch

import strokeseg
from strokeseg.models.clcinet import ConvLSTM2d, hard_sigmoid
from strokeseg.models.keras_layers import SameConv2d
from strokeseg.models.swin_unet import shift_mask

# Trainable parameters at width 1, 1 input and 1 output channel (TransUNet at img_size 224x224).
REFERENCE = {
    "transunet": 105_275_921,
    "swin_unet": 27_168_132,
    "xnet": 15_072_332,
    "clcinet": 36_813_025,
}


@functools.cache
def full(name: str, **kwargs) -> torch.nn.Module:
    return strokeseg.create_model(name, **kwargs)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", REFERENCE)
def test_trainable_parameters_match_the_official_code(name):
    assert n_params(full(name)) == REFERENCE[name]


@pytest.mark.parametrize("name, keras_total", [("xnet", 15_117_646), ("clcinet", 36_838_305)])
def test_keras_summary_total_adds_the_batchnorm_moving_statistics(name, keras_total):
    model = full(name)
    stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("_mean", "_var")))
    assert n_params(model) + stats == keras_total


def test_transunet_nine_class_and_14x12_grid_counts_follow_from_head_and_position_embedding():
    model = full("transunet")
    assert model.pos_embed.shape == (1, 14 * 14, 768)
    head = sum(p.numel() for p in model.head.parameters())
    assert head == 16 * 9 + 1  # 3x3 conv 16 -> 1 with bias
    assert n_params(model) - head + (16 * 9 * 9 + 9) == 105_277_081
    assert n_params(model) - (14 * 14 - 14 * 12) * 768 == 105_254_417


def test_swin_unet_nine_class_and_swin_t_depth_counts():
    model = full("swin_unet")
    assert model.head.weight.numel() == 96 and model.head.bias is None
    assert n_params(model) - 96 + 96 * 9 == 27_168_900
    assert n_params(full("swin_unet", depths=(2, 2, 6, 2), out_channels=9)) == 41_380_836


def test_same_conv_pads_bottom_right_like_tensorflow():
    conv = SameConv2d(1, 1, 3, stride=2, bias=False)
    torch.nn.init.ones_(conv.weight)
    y = conv(torch.ones(1, 1, 4, 4))
    # TF 'same', stride 2 on 4: one padded row/column, at the bottom/right only
    assert y.squeeze().tolist() == [[9.0, 6.0], [6.0, 4.0]]


def test_hard_sigmoid_is_the_keras_piecewise_linear_one():
    x = torch.tensor([-3.0, -2.5, 0.0, 1.0, 2.5, 4.0])
    assert torch.allclose(hard_sigmoid(x), torch.tensor([0.0, 0.0, 0.5, 0.7, 1.0, 1.0]))


def test_conv_lstm_two_steps_by_hand():
    lstm = ConvLSTM2d(1, 1, kernel_size=1)
    with torch.no_grad():
        lstm.input_conv.weight.fill_(1.0)
        lstm.input_conv.bias.zero_()
        lstm.recurrent_conv.weight.zero_()
    x = torch.ones(1, 1, 2, 2)
    gate = 0.7  # hard_sigmoid(1)
    c1 = gate * math.tanh(1.0)
    c2 = gate * c1 + gate * math.tanh(1.0)
    h = lstm([x, x])
    assert torch.allclose(h, torch.full_like(h, gate * math.tanh(c2)))


def test_conv_lstm_forget_bias_starts_at_one():
    lstm = full("clcinet").decoder[0].lstm
    bias = lstm.input_conv.bias.view(4, -1)
    assert torch.equal(bias[1], torch.ones_like(bias[1]))
    assert not bias[[0, 2, 3]].any()


def test_shift_mask_hand_counted():
    # 4x4 grid, window 2, shift 1: bands [0,2), [2,3), [3,4) along each axis
    mask = shift_mask(4, 4, 2, 1, torch.device("cpu"))
    masked_per_window = (mask != 0).sum(dim=(1, 2)).tolist()
    # top-left: one region; top-right/bottom-left: 2 regions of 2 tokens; bottom-right: 4 regions
    assert masked_per_window == [0, 8, 8, 12]
    assert set(mask.unique().tolist()) == {0.0, -100.0}


def test_transunet_position_embedding_is_resized_to_the_token_grid():
    model = strokeseg.create_model("transunet", width=0.125).eval()
    assert model.position_embedding(14, 14) is model.pos_embed
    with torch.no_grad():
        model.pos_embed.fill_(0.25)
    resized = model.position_embedding(5, 3)
    assert resized.shape == (1, 15, model.pos_embed.shape[-1])
    assert torch.allclose(resized, torch.full_like(resized, 0.25))


def test_swin_unet_output_is_the_crop_of_the_padded_input():
    model = strokeseg.create_model("swin_unet", width=0.125, window_size=2).eval()
    x = torch.randn(1, 1, 80, 48)
    padded = torch.nn.functional.pad(x, (0, 16, 0, 48))  # to multiples of 4 * 8 * 2 = 64
    with torch.no_grad():
        assert torch.allclose(model(x), model(padded)[..., :80, :48], atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", REFERENCE)
@pytest.mark.parametrize("size", [(224, 192), (512, 512)])
def test_full_size_forward(name, size):
    model = full(name).eval()
    with torch.no_grad():
        y = model(torch.randn(1, 1, *size))
    assert y.shape == (1, 1, *size)
    assert torch.isfinite(y).all()
