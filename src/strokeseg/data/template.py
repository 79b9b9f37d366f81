"""The ICBM152 2009a template files that nilearn's wheel ships (SynthATLAS's anatomy, the
brain mask the inference crop uses for scans on the MNI152 grid, the registration target)."""

from __future__ import annotations

from pathlib import Path

from strokeseg.errors import StrokesegError
from strokeseg.extras import locate

TEMPLATE_FILE = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"
BRAIN_THRESHOLD = 0.2
"""nilearn's own brain-mask rule: template T1 (rescaled to [0, 1]) above this value."""


def template_file(name: str) -> Path:
    """Path of a template file inside the installed nilearn package (found without importing
    nilearn, whose import costs seconds)."""
    spec = locate("nilearn", "the ICBM152 template (synthetic cohorts, registration)")
    path = Path(spec.origin).parent / "datasets" / "data" / TEMPLATE_FILE.format(name)
    if not path.is_file():
        raise StrokesegError(f"{path}: missing from the nilearn installation")
    return path
