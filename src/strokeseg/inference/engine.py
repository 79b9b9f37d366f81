"""The slice engine: lesion probabilities for a whole scan from one or more deployed networks.

The scan is reoriented to RAS, normalised as the checkpoint's training data was, and its
axial slices are cut to the boxes around the head (data/crop.py; ``crop=False``: every slice
zero-padded in-plane up to a multiple of 16, the exact whole-volume path), run through each
network on its runtime (runtime.py) in batches (with 2k+1 neighbouring slices as channels for
a 2.5D checkpoint), and pasted back (inference/slicing.py); 0 outside the boxes. Test-time
augmentation averages the probabilities of the slice and its flips; an ensemble averages its
members' probabilities (nnU-Net's way). Deterministic on the CPU: the same scan and
checkpoints give the same bytes.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from strokeseg.data.io import Volume
from strokeseg.errors import StrokesegError
from strokeseg.inference.checkpoint import load_network
from strokeseg.inference.native import (
    TemplateScan,
    back_to_scan,
    check_mirror_grid,
    check_register,
    needs_registration,
    register_scan,
)
from strokeseg.inference.postprocess import RAW, Postprocess, apply
from strokeseg.inference.runtime import make_runtime
from strokeseg.inference.slicing import Run, scan_probabilities
from strokeseg.models import first_filters

# flips of a (B, C, H, W) batch: W runs left-right, H posterior-anterior (data/slices.py)
TTA = {"none": ((),), "lr": ((), (3,)), "lr+ud": ((), (3,), (2,), (2, 3))}
DEVICES = ("auto", "cpu", "cuda")
GPU_BATCH_SIZE = 16
CPU_FEATURE_MAPS = 128
"""On the CPU a pass holds about this many first-level feature maps by default (slices x the
first conv's filters, 1 to 8 slices): 4 slices of a full-width UNet++ (32 filters) stay under
1.5 GiB at the speed of 8, and a quarter-width one (8 filters) is faster with 8 slices than
with 4 at the same memory (docs/performance.md)."""


def default_batch_size(device: torch.device, networks: Sequence[nn.Module]) -> int:
    """Slices per forward pass when ``--batch-size`` is not given."""
    if device.type != "cpu":
        return GPU_BATCH_SIZE
    filters = max(first_filters(n) for n in networks)
    return max(1, min(8, CPU_FEATURE_MAPS // filters))


def crop_keeps_answer(networks: Sequence[nn.Module], meta: dict) -> bool:
    """Whether the crop is the default for these networks: trained on slices zeroed outside
    the crop (``data.zero_outside_crop``) and every padded convolution replicate-padded.

    Only then does the crop give about the whole-slice answer (crop minus exact per-subject
    Dice +0.0001 raw, +0.0025 post-processed, pooled over three demo checkpoints; zero-padded
    2.5D networks lost 0.04: docs/performance.md). Other networks segment whole
    slices unless ``--crop``.
    """
    padded = [
        m
        for n in networks
        for m in n.modules()
        if isinstance(m, nn.Conv2d) and any(p > 0 for p in m.padding)
    ]
    replicate = bool(padded) and all(m.padding_mode == "replicate" for m in padded)
    return replicate and bool(meta["data"].get("zero_outside_crop", False))


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else the CPU; ``cuda`` without a GPU is refused."""
    if name not in DEVICES:
        raise StrokesegError(f"--device {name!r}: expected one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise StrokesegError("--device cuda: no CUDA GPU is available here (use auto or cpu)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def device_run(network: nn.Module, device: torch.device) -> Run:
    """``network`` on ``device`` (channels-last), called under the engine's inference mode."""
    network = network.to(device, memory_format=torch.channels_last).eval()
    return lambda x: network(x.contiguous(memory_format=torch.channels_last))


def probabilities(
    networks: Sequence[nn.Module],
    volume: Volume,
    modality: str,
    window: str = "brain",
    *,
    context_slices: int = 0,
    mirror: bool = False,
    zero_outside_crop: bool = False,
    tta: str = "none",
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    crop: bool = True,
    runs: Sequence[Run] | None = None,
    metas: Sequence[dict] | None = None,
) -> np.ndarray:
    """Mean lesion probability over ``networks`` and the ``tta`` flips (float32, RAS shape).

    ``crop`` segments only the boxes around the head (``data/crop.py``; 0 outside them),
    False every whole slice (the exact path). ``runs`` are the networks on a runtime
    (``runtime.py``; default: the network itself on ``device``); ``metas`` their checkpoints'
    descriptions (a grid-bound network's training grid, ``grid.py``).
    """
    device = torch.device(device)
    runs = list(runs) if runs is not None else [device_run(n, device) for n in networks]
    metas = list(metas) if metas is not None else [{} for _ in networks]
    autocast = (
        torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else nullcontext()
    )
    with torch.inference_mode(), autocast:
        return scan_probabilities(
            runs, networks, metas, volume, modality, window,
            crop=crop, zero_outside_crop=zero_outside_crop, context_slices=context_slices,
            mirror=mirror,
            flips=TTA[tta],
            batch_size=batch_size, device=device,
        )  # fmt: skip


class Predictor:
    """Deployed networks (one, or an ensemble sharing one preprocessing) with their inference
    settings: ``probabilities`` for a scan, ``masks`` for the raw and post-processed masks.
    The networks come pruned already (``--level``: :meth:`from_checkpoint`,
    :func:`strokeseg.inference.ensemble.ensemble_predictor`)."""

    def __init__(
        self,
        networks: Sequence[nn.Module],
        meta: dict,
        *,
        tta: str = "none",
        batch_size: int | None = None,
        device: str = "cpu",
        postprocess: bool = True,
        crop: bool | None = None,
        runtime: str = "auto",
        threads: int | None = None,
        register: str = "auto",
    ):
        if tta not in TTA:
            raise StrokesegError(f"--tta {tta!r}: expected one of {', '.join(TTA)}")
        if batch_size is not None and batch_size < 1:
            raise StrokesegError(f"--batch-size {batch_size}: must be >= 1")
        self.networks, self.meta = list(networks), meta
        self.tta, self.device = tta, resolve_device(device)
        self.register = check_register(register)
        self.batch_size = batch_size or default_batch_size(self.device, self.networks)
        self.crop = crop_keeps_answer(self.networks, meta) if crop is None else crop
        if crop is None and not self.crop:
            print(
                "strokeseg: note: segmenting whole slices: the crop changes this checkpoint's "
                "answer (zero-padded, or not trained zeroed outside the crop; "
                "docs/performance.md); --crop forces it, 2.5-3.6x faster",
                file=sys.stderr,
            )
        if self.device.type == "cpu":  # one runtime per network, made once for a folder
            self.runs = [make_runtime(n, runtime, threads) for n in self.networks]
        elif runtime not in ("auto", "eager"):
            raise StrokesegError(f"--runtime {runtime}: CPU only; use eager with --device cuda")
        else:
            self.runs = [device_run(n, self.device) for n in self.networks]
        saved = meta.get("postprocess") if postprocess else None
        self.rule = Postprocess(saved["threshold"], saved["min_lesion_mm3"]) if saved else RAW
        data = meta["data"]
        self.modality = data.get("modality", "mri")
        self.window = data.get("window", "brain")
        self.context_slices = int(data.get("context_slices", 0))
        self.mirror = bool(data.get("mirror", False))
        self.zero_outside_crop = bool(data.get("zero_outside_crop", False))

    @classmethod
    def from_checkpoint(cls, path, level: int = 4, **options) -> Predictor:
        network, meta = load_network(path, level)
        return cls([network], meta, **options)

    def probabilities(self, volume: Volume) -> np.ndarray:
        return probabilities(
            self.networks,
            volume,
            self.modality,
            self.window,
            context_slices=self.context_slices,
            mirror=self.mirror,
            zero_outside_crop=self.zero_outside_crop,
            tta=self.tta,
            batch_size=self.batch_size,
            device=self.device,
            crop=self.crop,
            runs=self.runs,
            metas=[self.meta] * len(self.networks),
        )

    def segment(self, volume: Volume) -> Segmentation:
        """The probability and masks on ``volume``'s grid; a template-space checkpoint segments
        a native scan on the template grid (``native.py``, ``--register``)."""
        template = None
        if needs_registration(volume, self.meta, self.register):
            template = register_scan(volume)
            prob = back_to_scan(self.probabilities(template.volume), template, volume)
        else:
            check_mirror_grid(volume, self.meta)
            prob = self.probabilities(volume)
        raw = apply(prob, volume.voxel_mm3, RAW)
        final = raw if self.rule == RAW else apply(prob, volume.voxel_mm3, self.rule)
        return Segmentation(prob, raw, final, template)

    def masks(self, volume: Volume) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(probability, raw mask at p >= 0.5, mask under the checkpoint's post-processing)."""
        result = self.segment(volume)
        return result.probability, result.raw, result.mask


@dataclass(frozen=True)
class Segmentation:
    """One scan's result on its own grid (RAS); ``template``: the registered scan the network
    saw, for a native scan segmented on the template grid."""

    probability: np.ndarray
    raw: np.ndarray
    mask: np.ndarray
    template: TemplateScan | None = None
