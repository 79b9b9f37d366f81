"""The slice engine: lesion probabilities for a whole scan from one or more deployed networks.

The scan is reoriented to RAS and prepared as the checkpoint's training data was
(``data/preprocessing.py``: normalised, zeroed outside the crop, mirrored), and its axial
slices are cut to the boxes around the head (data/crop.py; ``crop=False``: every slice
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
from strokeseg.data.preprocessing import PreparedScan, Preprocessing, TrainingData, prepare
from strokeseg.errors import StrokesegError
from strokeseg.inference.native import (
    TemplateScan,
    back_to_scan,
    check_mirror_grid,
    needs_registration,
    register_scan,
)
from strokeseg.inference.options import TTA, InferenceOptions
from strokeseg.inference.postprocess import RAW, Postprocess, apply
from strokeseg.inference.runtime import make_runtime
from strokeseg.inference.slicing import Batching, Run, scan_probabilities
from strokeseg.models import first_filters

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


def crop_keeps_answer(networks: Sequence[nn.Module], preprocessing: Preprocessing) -> bool:
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
    return replicate and preprocessing.zero_outside_crop


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else the CPU; ``cuda`` without a GPU is refused."""
    if name == "cuda" and not torch.cuda.is_available():
        raise StrokesegError("--device cuda: no CUDA GPU is available here (use auto or cpu)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def device_run(network: nn.Module, device: torch.device) -> Run:
    """``network`` on ``device`` (channels-last), called under the engine's inference mode."""
    network = network.to(device, memory_format=torch.channels_last).eval()
    return lambda x: network(x.contiguous(memory_format=torch.channels_last))


def make_runs(
    networks: Sequence[nn.Module], device: torch.device, options: InferenceOptions
) -> list[Run]:
    """The networks on their runtime (``runtime.py``): one per network, made once for a
    folder of scans."""
    if device.type == "cpu":
        return [make_runtime(n, options.runtime, options.threads) for n in networks]
    if options.runtime not in ("auto", "eager"):
        raise StrokesegError(f"--runtime {options.runtime}: CPU only; use eager with --device cuda")
    return [device_run(n, device) for n in networks]


class Predictor:
    """Deployed networks (one, or an ensemble sharing one preprocessing) with their inference
    options: ``segment`` a prepared scan, ``masks`` of a volume. The networks come pruned
    already (``--level``: :func:`strokeseg.inference.ensemble.load_predictor`); ``meta`` is
    the checkpoint's description, its ``data`` a :class:`TrainingData`."""

    def __init__(
        self,
        networks: Sequence[nn.Module],
        meta: dict,
        options: InferenceOptions | None = None,
    ):
        options = options or InferenceOptions()
        self.networks, self.meta, self.options = list(networks), meta, options
        self.data: TrainingData = meta["data"]
        self.preprocessing = self.data.preprocessing
        self.device = resolve_device(options.device)
        batch_size = options.batch_size or default_batch_size(self.device, self.networks)
        self.batching = Batching(TTA[options.tta], batch_size, self.device)
        self.crop = options.crop
        if self.crop is None:
            self.crop = crop_keeps_answer(self.networks, self.preprocessing)
            if not self.crop:
                print(
                    "strokeseg: note: segmenting whole slices: the crop changes this "
                    "checkpoint's answer (zero-padded, or not trained zeroed outside the crop; "
                    "docs/performance.md); --crop forces it, 2.5-3.6x faster",
                    file=sys.stderr,
                )
        self.runs = make_runs(self.networks, self.device, options)
        record = meta.get("postprocess") or {}
        saved = record if options.postprocess and record else None
        self.rule = Postprocess(saved["threshold"], saved["min_lesion_mm3"]) if saved else RAW
        self.false_lesion_ml = record.get("val_false_lesion_ml_median")
        """The median volume (mL) of the false lesions (touching no true lesion) the model left
        in its validation scans, if recorded (``quality.py``)."""

    def prepare(self, volume: Volume) -> PreparedScan:
        """``volume`` as these networks' training data was prepared."""
        return prepare(volume, self.preprocessing)

    def probabilities(self, scan: PreparedScan) -> np.ndarray:
        """Mean lesion probability over the networks and the TTA flips (float32, RAS)."""
        autocast = (
            torch.autocast("cuda", dtype=torch.float16)
            if self.device.type == "cuda"
            else nullcontext()
        )
        with torch.inference_mode(), autocast:
            return scan_probabilities(
                self.runs,
                self.networks,
                scan,
                crop=self.crop,
                slice_grid=self.data.slice_grid,
                batching=self.batching,
            )

    def segment(self, scan: PreparedScan) -> Segmentation:
        """The probability and masks on the scan's grid; a template-space checkpoint segments
        a native scan on the template grid (``native.py``, ``--register``)."""
        template, seen = None, scan
        if needs_registration(scan, self.options.register):
            template = register_scan(scan.volume)
            seen = self.prepare(template.volume)
            prob = back_to_scan(self.probabilities(seen), template, scan.volume)
        else:
            check_mirror_grid(scan)
            prob = self.probabilities(scan)
        voxel_mm3 = scan.volume.voxel_mm3
        raw = apply(prob, voxel_mm3, RAW)
        final = raw if self.rule == RAW else apply(prob, voxel_mm3, self.rule)
        return Segmentation(prob, raw, final, seen, template)

    def masks(self, volume: Volume) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(probability, raw mask at p >= 0.5, mask under the checkpoint's post-processing)."""
        result = self.segment(self.prepare(volume))
        return result.probability, result.raw, result.mask


@dataclass(frozen=True)
class Segmentation:
    """One scan's result on its own grid (RAS); ``seen``: the prepared scan the network saw
    (the scan itself, or the scan registered to the template grid, ``template``)."""

    probability: np.ndarray
    raw: np.ndarray
    mask: np.ndarray
    seen: PreparedScan
    template: TemplateScan | None = None
