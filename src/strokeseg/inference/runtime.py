"""One deployed network as a callable ``batch -> logits``, on one of three CPU runtimes.

- ``eager``: PyTorch, channels-last (NHWC) memory layout, ``inference_mode``.
- ``compile``: ``torch.compile`` (Inductor, C++ kernels; the first call of each new input
  size compiles, seconds to minutes).
- ``onnx``: the network traced to ONNX (as ``strokeseg export`` does) and run by ONNX
  Runtime's CPU provider with all graph optimisations.

- ``auto`` (the default of ``predict`` and ``evaluate``): ONNX Runtime when it is installed
  (the ``export`` extra), else eager. If the export or the first-batch check fails, a note on
  stderr says so and the run goes on eagerly.

Every runtime takes and returns float32 CPU tensors (B, C, H, W) -> (B, 1, H, W). The first
batch a non-eager runtime sees is also run eagerly on one slice and compared: a runtime that
differs from PyTorch by more than 1e-4 in probability is refused, so a faster path is never a
silently different one. ``threads`` sets PyTorch's intra-op threads (process-wide) and ONNX
Runtime's ``intra_op_num_threads``.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from strokeseg.errors import StrokesegError

RUNTIMES = ("auto", "eager", "compile", "onnx")
TOLERANCE = 1e-4  # in probability


def set_threads(threads: int | None) -> int:
    """Use ``threads`` intra-op threads in PyTorch (None: leave as is); returns the count."""
    if threads is not None:
        if threads < 1:
            raise StrokesegError(f"--threads {threads}: must be >= 1")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def _eager(network: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    network = network.to(memory_format=torch.channels_last).eval()

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return network(x.contiguous(memory_format=torch.channels_last)).contiguous()

    return run


def _compiled(network: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    network = network.to(memory_format=torch.channels_last).eval()
    compiled = torch.compile(network)  # static first, one dynamic-shape recompile after

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return compiled(x.contiguous(memory_format=torch.channels_last)).contiguous()

    return run


class _OnnxRun:
    """ONNX Runtime session built lazily: the trace needs the input's channel count."""

    def __init__(self, network: nn.Module, threads: int):
        self.network, self.threads, self.session = network, threads, None

    def _build(self, channels: int) -> None:
        import onnxruntime

        from strokeseg.inference.export import write_onnx

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "network.onnx"
            write_onnx(self.network.eval(), path, (1, channels, 64, 64))
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.session is None:
            self._build(x.shape[1])
        out = self.session.run(None, {"image": x.detach().cpu().numpy()})[0]
        return torch.from_numpy(out)


def make_runtime(
    network: nn.Module, kind: str = "eager", threads: int | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``network`` (deployed, eval) as ``batch -> logits`` on runtime ``kind``."""
    if kind not in RUNTIMES:
        raise StrokesegError(f"--runtime {kind!r}: expected one of {', '.join(RUNTIMES)}")
    threads = set_threads(threads)
    if kind == "auto":
        if not onnx_available():
            return _eager(network)
        return _Fallback(_Checked(_OnnxRun(network, threads), _eager(network), "onnx"), network)
    if kind == "eager":
        return _eager(network)
    if kind == "compile":
        return _Checked(_compiled(network), _eager(network), kind)
    return _Checked(_OnnxRun(network, threads), _eager(network), kind)


class _Checked:
    """A runtime compared with eager PyTorch on the first slice it is given."""

    def __init__(self, run, reference, kind: str):
        self.run, self.reference, self.kind, self.checked = run, reference, kind, False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.run(x)
        if not self.checked:
            got, want = torch.sigmoid(out[:1]), torch.sigmoid(self.reference(x[:1]))
            difference = float((got - want).abs().max())
            if difference > TOLERANCE:
                raise StrokesegError(
                    f"--runtime {self.kind}: differs from PyTorch by {difference:.1e} in "
                    f"probability (> {TOLERANCE}) on input {tuple(x.shape[1:])}; use eager"
                )
            self.checked = True
        return out


def onnx_available() -> bool:
    """Whether the ``export`` extra (onnx, onnxruntime, onnxscript) is installed."""
    return all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript"))


class _Fallback:
    """``--runtime auto``: ONNX Runtime, or eager PyTorch from the first batch it fails on."""

    def __init__(self, run: _Checked, network: nn.Module):
        self.run, self.network, self.eager = run, network, None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.eager is None:
            try:
                return self.run(x)
            except Exception as error:  # an export, session or check failure: never fatal here
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                print(
                    f"strokeseg: note: --runtime auto: ONNX Runtime not used ({reason}); "
                    "running PyTorch eager",
                    file=sys.stderr,
                )
                self.eager = _eager(self.network)
        return self.eager(x)
