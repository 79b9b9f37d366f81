"""strokeseg: stroke lesion segmentation with a multi-task UNet++ and its baselines.

A research tool, not a medical device. The model API is imported on first use, so the
command line starts without loading torch when a command does not need it.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__", "create_model", "deploy", "list_models"]


def __getattr__(name: str):
    if name in ("create_model", "deploy", "list_models"):
        from strokeseg import models

        return getattr(models, name)
    raise AttributeError(f"module 'strokeseg' has no attribute {name!r}")
