"""How checkpoints are run on scans: one typed object, built once (from the command line's
``--tta``, ``--device``, ... flags in ``commands/options.py``, or by a job) and handed down
whole to :func:`strokeseg.inference.ensemble.load_predictor`."""

from __future__ import annotations

from dataclasses import dataclass

from strokeseg.errors import StrokesegError

TTA = {"none": ((),), "lr": ((), (3,)), "lr+ud": ((), (3,), (2,), (2, 3))}
"""Flips of a (B, C, H, W) batch: W runs left-right, H posterior-anterior (data/slices.py)."""
DEVICES = ("auto", "cpu", "cuda")
REGISTER = ("auto", "always", "never")


@dataclass(frozen=True)
class InferenceOptions:
    """Test-time augmentation, device, slices per pass (None: :func:`default_batch_size
    <strokeseg.inference.engine.default_batch_size>`), the checkpoint's post-processing or
    plain p >= 0.5, the crop (None: the default for the checkpoint,
    :func:`strokeseg.inference.engine.crop_keeps_answer`), the CPU runtime and threads, the
    pruned UNet++ level, and the registration mode (``native.py``)."""

    tta: str = "none"
    device: str = "cpu"
    batch_size: int | None = None
    postprocess: bool = True
    crop: bool | None = None
    runtime: str = "auto"
    threads: int | None = None
    level: int = 4
    register: str = "auto"

    def __post_init__(self) -> None:
        """Refuse a value no flag accepts (the runtime, threads and level are checked where
        they are used: runtime.py, models/pruned.py)."""
        for flag, value, valid in (
            ("--tta", self.tta, tuple(TTA)),
            ("--device", self.device, DEVICES),
            ("--register", self.register, REGISTER),
        ):
            if value not in valid:
                raise StrokesegError(f"{flag} {value!r}: expected one of {', '.join(valid)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise StrokesegError(f"--batch-size {self.batch_size}: must be >= 1")
