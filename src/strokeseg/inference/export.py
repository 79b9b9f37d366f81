"""Export the deployed main branch only: ONNX (checked with ONNX Runtime) or TorchScript ``.pt``.

Both take (batch, C, H, W) float32 images (C = 1, or 2k+1 slices for a 2.5D checkpoint) with
H and W multiples of 16 and return mask logits of the same size; batch, H and W are dynamic.
The exported file is compared against PyTorch on random input of a different size than the
one traced, so a wrong export never lands silently.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from strokeseg.data.io import atomic_path
from strokeseg.errors import StrokesegError
from strokeseg.extras import require
from strokeseg.inference.checkpoint import input_channels

TRACE_SHAPE = (1, 1, 64, 64)
CHECK_SHAPE = (2, 1, 96, 80)
TOLERANCE = 1e-4
"""Relative to the largest |logit| of the reference (at least 1): wide networks give logits
in the hundreds, where float32 rounding alone exceeds an absolute 1e-4."""


def _reference(network: nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return network(x).numpy()


def write_onnx(network: nn.Module, path: Path, shape: tuple[int, ...] = TRACE_SHAPE) -> None:
    """Trace ``network`` on zeros of ``shape`` into an ONNX file with dynamic batch, H, W."""
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings on the size check are expected
        torch.onnx.export(
            network,
            (torch.zeros(shape),),
            str(path),
            dynamo=False,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": axes, "logits": axes},
            opset_version=17,
        )


def _export_onnx(network: nn.Module, meta: dict, tmp: Path, check: torch.Tensor) -> float:
    onnx = require("onnx", "export to ONNX")
    onnxruntime = require("onnxruntime", "export to ONNX")
    write_onnx(network, tmp, (1, check.shape[1], *TRACE_SHAPE[2:]))
    model = onnx.load(str(tmp))
    onnx.helper.set_model_props(model, {"strokeseg": json.dumps(meta, default=str)})
    onnx.save(model, str(tmp))
    session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": check.numpy()})[0]
    return _relative(got, _reference(network, check))


def _relative(got: np.ndarray, reference: np.ndarray) -> float:
    """max |got - reference|, relative to max(1, max |reference|)."""
    return float(np.abs(got - reference).max() / max(1.0, float(np.abs(reference).max())))


def _export_torchscript(network: nn.Module, meta: dict, tmp: Path, check: torch.Tensor) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(network, torch.zeros(1, check.shape[1], *TRACE_SHAPE[2:]))
    extra = {"strokeseg.json": json.dumps(meta, default=str)}
    torch.jit.save(traced, str(tmp), _extra_files=extra)
    loaded = torch.jit.load(str(tmp))
    with torch.inference_mode():
        got = loaded(check).numpy()
    return _relative(got, _reference(network, check))


def export(network: nn.Module, meta: dict, out: Path, *, overwrite: bool = False) -> float:
    """Write ``out`` (.onnx or .pt) atomically; returns the max |difference| against PyTorch,
    relative to the largest |logit| (see :data:`TOLERANCE`)."""
    exporters = {".onnx": _export_onnx, ".pt": _export_torchscript}
    if out.suffix not in exporters:
        raise StrokesegError(f"{out}: unknown export format; use a .onnx or .pt file name")
    shape = (CHECK_SHAPE[0], input_channels(meta), *CHECK_SHAPE[2:])
    check = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    with atomic_path(out, overwrite=overwrite) as tmp:
        difference = exporters[out.suffix](network.eval(), meta, tmp, check)
        if difference > TOLERANCE:
            raise StrokesegError(
                f"{out}: exported model differs from PyTorch by {difference:.2e} of its largest "
                f"logit (> {TOLERANCE})"
            )
    return difference
