"""Optional dependencies, installed as extras: a missing one is one line naming the extra.

``export`` (ONNX, ONNX Runtime, onnxscript), ``dicom`` (SimpleITK) and ``synth`` (nilearn,
which ships the ICBM152 template) are heavy and only needed by one command each, so a plain
``pip install strokeseg`` leaves them out; ``make install`` installs ``.[all]``.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from strokeseg.errors import StrokesegError

EXTRAS = {
    "onnx": "export",
    "onnxruntime": "export",
    "onnxscript": "export",
    "SimpleITK": "dicom",
    "nilearn": "synth",
}
"""Module -> the extra that installs it (pyproject.toml [project.optional-dependencies])."""


def missing(module: str, purpose: str) -> StrokesegError:
    """The one-line error for a missing optional module."""
    extra = EXTRAS[module]
    return StrokesegError(
        f"{purpose} needs the optional package {module}, which is not installed: "
        f"pip install 'strokeseg[{extra}]'"
    )


def require(module: str, purpose: str) -> ModuleType:
    """Import an optional module, or raise :func:`missing`'s error."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise missing(module, purpose) from None


def locate(module: str, purpose: str) -> importlib.machinery.ModuleSpec:
    """Find an optional module without importing it (nilearn's import costs seconds)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        raise missing(module, purpose)
    return spec
