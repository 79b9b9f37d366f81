"""UNet++ wiring pinned by forward hooks: what each node concatenates, and dropout per conv.

The parameter count alone would not catch a node fed the wrong maps of the right widths.
"""

from __future__ import annotations

import torch
from torch import nn

import strokeseg


def test_each_node_concatenates_its_row_and_the_upsampled_node_below():
    model = strokeseg.create_model("unetpp", width=0.125, norm="batch").eval()
    inputs, outputs = {}, {}

    def keep(name):
        def hook(module, args, out):
            inputs[name], outputs[name] = args[0], out

        return hook

    for name, module in [*model.nodes.items(), *model.ups.items()]:
        module.register_forward_hook(keep(name))
    x = torch.randn(1, 1, 32, 48)
    model(x)
    assert torch.equal(inputs["x0_0"], x)
    for i in range(1, 5):  # the backbone: 2x2 max-pool of the node above
        assert torch.equal(inputs[f"x{i}_0"], nn.functional.max_pool2d(outputs[f"x{i - 1}_0"], 2))
    for j in range(1, 5):
        for i in range(5 - j):
            assert torch.equal(inputs[f"up{i}_{j}"], outputs[f"x{i + 1}_{j - 1}"])
            row = [outputs[f"x{i}_{k}"] for k in range(j)]
            expected = [*row, outputs[f"up{i}_{j}"]]  # X(i,0..j-1), up: concatenated
            got = inputs[f"x{i}_{j}"]
            assert len(got) == len(expected), f"X({i},{j})"
            assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    # the mask head reads X(0,4)
    assert torch.allclose(model(x), model.head(outputs["x0_4"]))


def test_original_unetpp_has_dropout_after_every_conv_and_no_normalisation():
    model = strokeseg.create_model("unetpp")
    for name, node in model.nodes.items():
        kinds = [type(m) for m in node]
        assert kinds == [nn.Conv2d, nn.ReLU, nn.Dropout] * 2, name
        assert all(m.p == 0.5 for m in node if isinstance(m, nn.Dropout))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    small = strokeseg.create_model("unetpp", width=0.125).train()
    x = torch.randn(1, 1, 32, 32)
    assert not torch.equal(small(x), small(x))  # dropout acts in training
    small.eval()
    assert torch.equal(small(x), small(x))


def _with_running_statistics(padding: str) -> nn.Module:
    torch.manual_seed(0)
    model = strokeseg.create_model("unetpp", width=0.125, norm="batch", padding=padding)
    for module in model.modules():  # statistics that map a uniform input to non-zero
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


def test_replicate_padding_hides_the_frame_of_a_uniform_input():
    """With replicate padding the edge of a uniform region is no edge: every convolution sees
    the same value past it, so the encoder's maps of a uniform input are uniform whatever its
    size. With zero padding they are not: the frame is an edge the deep layers see. (The
    transposed convolutions of the decoder turn a uniform map into one periodic on the
    16-pixel lattice, which replicate padding continues only approximately.)"""
    small, large = torch.full((1, 1, 32, 48), 0.3), torch.full((1, 1, 96, 112), 0.3)
    with torch.inference_mode():
        zeros = _with_running_statistics("zeros")
        assert zeros.features(large)["deepest"].std(dim=(2, 3)).max() > 1e-2
        replicate = _with_running_statistics("replicate")
        deep_small, deep_large = (
            replicate.features(small)["deepest"],
            replicate.features(large)["deepest"],
        )
    assert deep_large.shape[-2:] == (6, 7)
    torch.testing.assert_close(deep_large, deep_small[..., :1, :1].expand_as(deep_large))
    assert deep_small.abs().max() > 1e-2  # not trivially zero
    conv = next(m for m in replicate.modules() if isinstance(m, nn.Conv2d))
    assert conv.padding_mode == "replicate"
    same = strokeseg.create_model("unetpp", width=0.125, norm="batch")
    assert same.state_dict().keys() == replicate.state_dict().keys()  # the same network


def test_unknown_padding_is_refused():
    import pytest

    with pytest.raises(ValueError, match="padding must be 'zeros' or 'replicate'"):
        strokeseg.create_model("unetpp", padding="reflect")


def test_the_one_copy_replicate_pad_is_pad_of_the_concatenation():
    """``replicate_padded`` against PyTorch's own ops, values and gradients, in both memory
    formats; odd sizes so rows and columns cannot be swapped unnoticed."""
    from strokeseg.models.unetpp import replicate_padded

    torch.manual_seed(0)
    for memory_format in (torch.contiguous_format, torch.channels_last):
        parts = [
            torch.randn(2, c, 5, 7, dtype=torch.float64)
            .contiguous(memory_format=memory_format)
            .requires_grad_()
            for c in (1, 3, 2)
        ]
        got = replicate_padded(parts)
        want = nn.functional.pad(torch.cat(parts, 1), (1, 1, 1, 1), mode="replicate")
        assert torch.equal(got, want)
        assert got.is_contiguous(memory_format=memory_format)
        weight = torch.randn_like(want)
        for a, b in zip(
            torch.autograd.grad(got, parts, weight),
            torch.autograd.grad(want, parts, weight),
            strict=True,
        ):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    corner = replicate_padded([torch.arange(6.0).reshape(1, 1, 2, 3)])[0, 0]
    assert corner.tolist() == [  # by hand: each border pixel repeats its nearest pixel
        [0, 0, 1, 2, 2],
        [0, 0, 1, 2, 2],
        [3, 3, 4, 5, 5],
        [3, 3, 4, 5, 5],
    ]


def test_eager_replicate_network_equals_its_traced_graph_of_plain_ops():
    """Eager PyTorch pads in one copy; a trace (what ONNX and TorchScript export see) records
    ``torch.cat`` and ``replication_pad2d``: the same network, the same numbers."""
    model = _with_running_statistics("replicate")
    x = torch.randn(2, 1, 32, 48)
    traced = torch.jit.trace(model, x)
    ops = {node.kind() for node in traced.inlined_graph.nodes()}
    assert {"aten::cat", "aten::pad"} <= ops and "aten::copy_" not in ops
    with torch.inference_mode():
        torch.testing.assert_close(model(x), traced(x), rtol=0, atol=1e-5)


def test_the_one_copy_pad_serves_inference_only(monkeypatch):
    """Eager inference takes the one-copy pad (the speed of docs/performance.md);
    training keeps PyTorch's ops, whose backward is cheaper."""
    import strokeseg.models.unetpp as unetpp

    calls = []
    real = unetpp.replicate_padded
    monkeypatch.setattr(unetpp, "replicate_padded", lambda parts: calls.append(1) or real(parts))
    model = strokeseg.create_model("unetpp", width=0.125, norm="batch", padding="replicate")
    x = torch.randn(2, 1, 32, 32)
    model.train()(x).sum().backward()
    assert not calls
    with torch.inference_mode():
        model.eval()(x)
    assert len(calls) == 2 * len(model.nodes)  # both convolutions of every node
