"""Every registered model exports (ONNX and TorchScript) and the file equals PyTorch at
input sizes other than the traced one, within a tolerance relative to the logits' scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from strokeseg.inference.export import TOLERANCE, export
from strokeseg.models import create_model, deploy, list_models
from strokeseg.models.segnet import unpool

SIZES = ((2, 1, 96, 80), (1, 1, 48, 112))  # H/16 or W/16 odd: SegNet's ceil-mode pooling


def test_segnet_unpool_is_max_unpool():
    g = torch.Generator().manual_seed(0)
    for h, w in ((5, 7), (6, 6), (3, 9)):
        before = torch.randn(2, 3, h, w, generator=g)
        pooled, idx = torch.nn.functional.max_pool2d(
            before, 2, 2, ceil_mode=True, return_indices=True
        )
        expected = torch.nn.MaxUnpool2d(2, 2)(pooled, idx, output_size=(h, w))
        assert torch.equal(unpool(pooled, idx, like=before), expected)


def _check(name: str, width: float, suffix: str, tmp_path, **kwargs) -> None:
    import onnxruntime

    torch.manual_seed(0)
    network = deploy(create_model(name, width=width, **kwargs))
    path = tmp_path / f"{name}{suffix}"
    export(network, {"model_name": name}, path)
    if suffix == ".onnx":
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    else:
        loaded = torch.jit.load(str(path))
    for shape in SIZES:
        x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            expected = network(x).numpy()
            got = (
                session.run(None, {"image": x.numpy()})[0]
                if suffix == ".onnx"
                else loaded(x).numpy()
            )
        scale = max(1.0, float(np.abs(expected).max()))
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= TOLERANCE * scale, (name, shape)


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_segnet_exports(suffix, tmp_path):
    """It crashed with a TypeError from MaxUnpool2d's output_size under trace."""
    _check("segnet", 0.125, suffix, tmp_path)


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_replicate_padded_unetpp_exports(suffix, tmp_path):
    """ONNX has the edge padding as a Pad node before each convolution."""
    _check("unetpp", 0.125, suffix, tmp_path, norm="batch", padding="replicate")


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_every_model_exports_at_tiny_width(name, suffix, tmp_path):
    _check(name, 0.125, suffix, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_every_model_exports_at_full_width(name, tmp_path):
    _check(name, 1.0, ".onnx", tmp_path)
