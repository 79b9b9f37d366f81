"""strokeseg: stroke lesion segmentation with a multi-task UNet++ and its baselines.

A research tool, not a medical device.
"""

from __future__ import annotations

from strokeseg.models import create_model, deploy, list_models

__version__ = "0.1.0"
__all__ = ["__version__", "create_model", "deploy", "list_models"]
