"""Keep the command line's output strokeseg's own: Lightning's advertisements and banners off.

Lightning logs a "Tip" pointing at its cloud products (litlogger, litmodels) and banner
lines on accelerators (GPU/TPU/HPU available) at every Trainer start; they say nothing
about the run. A filter on its rank-zero loggers drops exactly those lines; warnings and
errors pass.
"""

from __future__ import annotations

import logging

DROPPED = (
    "💡 Tip:",
    "GPU available:",
    "TPU available:",
    "HPU available:",
    "IPU available:",
    "LOCAL_RANK:",
    "`Trainer(limit_",  # "... was configured so 100% of the batches will be used"
)
LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


class _Banners(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not record.getMessage().startswith(DROPPED)


_FILTER = _Banners()


def silence_lightning() -> None:
    """Install the filter (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
