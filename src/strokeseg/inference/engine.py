"""The slice engine: lesion probabilities for a whole scan from one or more deployed networks.

The scan is reoriented to RAS, normalised as the checkpoint's training data was, cut into
axial slices zero-padded in-plane up to a multiple of 16 (so every voxel is segmented;
training crops down instead), run through each network in batches (with 2k+1 neighbouring
slices as channels for a 2.5D checkpoint), and pasted back. Test-time augmentation averages the
probabilities of the slice and its flips; an ensemble averages its members' probabilities
(nnU-Net's way). Deterministic on the CPU: the same scan and checkpoints give the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np
import torch
from torch import nn

from strokeseg.data.intensity import normalize
from strokeseg.data.io import Volume
from strokeseg.data.slices import from_slices, stack_context, to_slices
from strokeseg.errors import StrokesegError
from strokeseg.inference.checkpoint import load_network
from strokeseg.inference.postprocess import RAW, Postprocess, apply

# flips of a (B, C, H, W) batch: W runs left-right, H posterior-anterior (data/slices.py)
TTA = {"none": ((),), "lr": ((), (3,)), "lr+ud": ((), (3,), (2,), (2, 3))}
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else the CPU; ``cuda`` without a GPU is refused."""
    if name not in DEVICES:
        raise StrokesegError(f"--device {name!r}: expected one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise StrokesegError("--device cuda: no CUDA GPU is available here (use auto or cpu)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def probabilities(
    networks: Sequence[nn.Module],
    volume: Volume,
    modality: str,
    window: str = "brain",
    *,
    context_slices: int = 0,
    tta: str = "none",
    batch_size: int = 8,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Mean lesion probability over ``networks`` and the ``tta`` flips (float32, RAS shape)."""
    device = torch.device(device)
    slices = to_slices(normalize(volume.data, modality, window), pad=True)
    total = np.zeros(slices.shape, dtype=np.float32)
    autocast = (
        torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else nullcontext()
    )
    runs = [network.to(device, memory_format=torch.channels_last).eval() for network in networks]
    with torch.inference_mode(), autocast:
        for start in range(0, len(slices), batch_size):
            zs = np.arange(start, min(start + batch_size, len(slices)))
            x = torch.from_numpy(stack_context(slices, zs, context_slices)).float()
            x = x.to(device).contiguous(memory_format=torch.channels_last)
            p = torch.zeros((len(zs), *slices.shape[1:]), dtype=torch.float32, device=device)
            for network in runs:
                for dims in TTA[tta]:
                    logits = network(torch.flip(x, dims) if dims else x).float()
                    p += torch.sigmoid(torch.flip(logits, dims) if dims else logits)[:, 0]
            total[zs] = (p / (len(runs) * len(TTA[tta]))).cpu().numpy()
    return from_slices(total, volume.data.shape)


class Predictor:
    """Deployed networks (one, or an ensemble sharing one preprocessing) with their inference
    settings: ``probabilities`` for a scan, ``masks`` for the raw and post-processed masks."""

    def __init__(
        self,
        networks: Sequence[nn.Module],
        meta: dict,
        *,
        tta: str = "none",
        batch_size: int = 8,
        device: str = "cpu",
        postprocess: bool = True,
    ):
        if tta not in TTA:
            raise StrokesegError(f"--tta {tta!r}: expected one of {', '.join(TTA)}")
        if batch_size < 1:
            raise StrokesegError(f"--batch-size {batch_size}: must be >= 1")
        self.networks, self.meta = list(networks), meta
        self.tta, self.batch_size, self.device = tta, batch_size, resolve_device(device)
        saved = meta.get("postprocess") if postprocess else None
        self.rule = Postprocess(saved["threshold"], saved["min_lesion_mm3"]) if saved else RAW
        data = meta["data"]
        self.modality = data.get("modality", "mri")
        self.window = data.get("window", "brain")
        self.context_slices = int(data.get("context_slices", 0))

    @classmethod
    def from_checkpoint(cls, path, **options) -> Predictor:
        network, meta = load_network(path)
        return cls([network], meta, **options)

    def probabilities(self, volume: Volume) -> np.ndarray:
        return probabilities(
            self.networks,
            volume,
            self.modality,
            self.window,
            context_slices=self.context_slices,
            tta=self.tta,
            batch_size=self.batch_size,
            device=self.device,
        )

    def masks(self, volume: Volume) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(probability, raw mask at p >= 0.5, mask under the checkpoint's post-processing)."""
        prob = self.probabilities(volume)
        raw = apply(prob, volume.voxel_mm3, RAW)
        final = raw if self.rule == RAW else apply(prob, volume.voxel_mm3, self.rule)
        return prob, raw, final
