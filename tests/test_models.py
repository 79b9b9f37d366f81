"""One shared test over the whole registry: every model joins it by being registered."""

from __future__ import annotations

import pytest
import torch

import strokeseg
from strokeseg.models import has_output_bias, init_output_prior
from strokeseg.models.multitask import build_loss

# Tiny settings per model so the whole registry runs in seconds on a CPU. A model that
# needs other settings than the default gets its own entry.
DEFAULT_TINY = {"width": 0.125}
TINY_KWARGS: dict[str, dict] = {
    "swin_unet": {"width": 0.125, "window_size": 2},  # pads to multiples of 64, not 224
}
SIZES = [(64, 64), (80, 48)]


def tiny(name: str) -> torch.nn.Module:
    return strokeseg.create_model(name, **TINY_KWARGS.get(name, DEFAULT_TINY))


def mask_logits(out) -> torch.Tensor:
    return out["mask"] if isinstance(out, dict) else out


@pytest.fixture(params=strokeseg.list_models())
def name(request):
    return request.param


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unetpp_mtl"):
        strokeseg.create_model("no_such_model")


@pytest.mark.parametrize("size", SIZES)
def test_output_shape_and_finite(name, size):
    model = tiny(name).eval()
    x = torch.randn(2, 1, *size)
    with torch.no_grad():
        y = model(x)
    assert isinstance(y, torch.Tensor), "eval-mode forward returns mask logits"
    assert y.shape == (2, 1, *size)
    assert torch.isfinite(y).all()


def test_every_parameter_gets_a_gradient(name):
    model = tiny(name).train()
    x = torch.randn(2, 1, 64, 64)
    y = (torch.rand(2, 1, 64, 64) > 0.7).float()
    losses = build_loss(name)(model(x), y)
    losses["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:5]}"
    nan = [n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
    assert not nan, f"non-finite gradient for {nan[:5]}"


def test_eval_is_deterministic(name):
    model = tiny(name).eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_state_dict_round_trip(name, tmp_path):
    model = tiny(name).eval()
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    clone = tiny(name)
    clone.load_state_dict(torch.load(path, weights_only=True), strict=True)
    clone.eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), clone(x))


def test_deploy_keeps_the_trained_batchnorm_statistics(name):
    """After training steps the BatchNorm running statistics differ from their start; the
    deployed network carries them (its eval output is the trained model's, not a fresh one's)
    and is an independent copy (training on does not change it)."""
    torch.manual_seed(0)
    kwargs = {**TINY_KWARGS.get(name, DEFAULT_TINY)}
    if name.startswith("unetpp"):
        kwargs["norm"] = "batch"  # the original UNet++ has no normalisation
    model = strokeseg.create_model(name, **kwargs).train()
    fresh = strokeseg.deploy(strokeseg.create_model(name, **kwargs))
    fresh.load_state_dict(strokeseg.deploy(model).state_dict())  # same weights, start stats
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    for _ in range(3):
        x = torch.randn(2, 1, 64, 64) * 3 + 2  # far from the N(0, 1) the stats start at
        loss = mask_logits(model(x)).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    deployed = strokeseg.deploy(model)
    norms = [m for m in deployed.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        expected = mask_logits(model.eval()(x))
        assert torch.equal(deployed(x), expected)
        if norms:  # every model here but Swin-Unet/TransUNet's GroupNorm/LayerNorm parts
            assert any(not torch.all(m.running_mean == 0) for m in norms)
            fresh.load_state_dict(
                {k: v for k, v in deployed.state_dict().items() if "running" not in k},
                strict=False,
            )
            assert not torch.allclose(fresh.eval()(x), expected)
    model.train()
    loss = mask_logits(model(torch.randn(2, 1, 64, 64))).square().mean()
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        assert torch.equal(deployed(x), expected)
    assert not hasattr(deployed, "edge_head") and not hasattr(deployed, "lffgm")


def test_output_prior_sets_every_output_bias_or_is_refused(name):
    model = tiny(name).train()
    if name == "swin_unet":  # its reference head has no bias
        assert not has_output_bias(model)
        with pytest.raises(ValueError, match="no bias"):
            init_output_prior(model, 0.01)
        return
    init_output_prior(model, 0.01)
    # logit(0.01) = ln(0.01 / 0.99) = -4.59512
    net = model.inference_network() if hasattr(model, "inference_network") else model
    assert torch.allclose(net.head.bias, torch.tensor(-4.59512), atol=1e-5)
    if hasattr(model, "edge_head"):
        assert torch.allclose(model.edge_head.bias, torch.tensor(-4.59512), atol=1e-5)
    # with every other weight at zero the output is the prior everywhere
    with torch.no_grad():
        for parameter in net.head.parameters():
            if parameter is not net.head.bias:
                parameter.zero_()
        p = torch.sigmoid(mask_logits(model(torch.randn(2, 1, 64, 64))))
    assert torch.allclose(p, torch.tensor(0.01), atol=1e-6)
