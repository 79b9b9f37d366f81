"""Data pipeline cost on ATLAS-sized volumes: decode + cache per volume, loader slices/s.

Writes a few synthetic subjects at ATLAS R2.0's grid (197x233x189 float32 .nii.gz, BIDS
layout) to a temporary folder, then measures, in one run:
- decode + cache: SliceCache.build on an empty cache (gzip decode, percentile normalisation,
  slicing, float16/uint8 .npy write), seconds per volume; and the re-open of a valid cache;
- loader throughput: one epoch of SliceDataset through a DataLoader (batch 16, lesion
  oversampling), slices/s, without and with augmentation, for 0 and 2 worker processes;
- what training consumes: slices/s of a UNet++ training step (forward + backward + Adam) at
  224x192 on the same machine, so the loader/training ratio can be read off.

    python benchmarks/data.py [--subjects 4 --batch 16 --train-batch 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from torch.utils.data import DataLoader

import strokeseg
from strokeseg.data import find_dataset
from strokeseg.data.cache import SliceCache, SliceDataset

SHAPE = (197, 233, 189)


def write_subjects(root: Path, n: int) -> None:
    """Brain-like float volumes (smooth tissue + noise inside an ellipsoid) with one lesion."""
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in SHAPE], indexing="ij"))
    inside = ((grid / np.array([0.8, 0.85, 0.8])[:, None, None, None]) ** 2).sum(0) < 1
    lesion = (((grid - np.array([0.3, 0.1, 0.2])[:, None, None, None]) / 0.15) ** 2).sum(0) < 1
    affine = np.eye(4)
    affine[:3, 3] = (-98, -134, -72)
    for i in range(n):
        tissue = gaussian_filter(rng.normal(0, 1, SHAPE).astype(np.float32), 4)
        image = np.where(inside, 60 + 400 * tissue + rng.normal(0, 5, SHAPE), 0).astype(np.float32)
        anat = root / f"sub-{i:03d}" / "ses-1" / "anat"
        anat.mkdir(parents=True)
        stem = f"sub-{i:03d}_ses-1_space-MNI152NLin2009aSym"
        nib.save(nib.Nifti1Image(image, affine), anat / f"{stem}_T1w.nii.gz")
        mask = nib.Nifti1Image(lesion.astype(np.uint8), affine)
        nib.save(mask, anat / f"{stem}_label-L_desc-T1lesion_mask.nii.gz")


def loader_rate(cache: SliceCache, augment: bool, workers: int, batch: int) -> float:
    data = SliceDataset(cache, augment=augment, lesion_fraction=0.5)
    loader = DataLoader(
        data, batch_size=batch, sampler=data.sampler(), num_workers=workers, drop_last=True
    )
    start, seen = time.perf_counter(), 0
    for sample in loader:
        seen += sample["image"].shape[0]
    return seen / (time.perf_counter() - start)


def training_rate(batch: int, steps: int) -> float:
    model = strokeseg.create_model("unetpp").train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-4)
    x, y = torch.rand(batch, 1, 224, 192), (torch.rand(batch, 1, 224, 192) > 0.9).float()
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times[1:])  # the first step warms up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--train-batch", type=int, default=4)
    parser.add_argument("--train-steps", type=int, default=3)
    args = parser.parse_args()
    before = ", ".join(f"{v:.1f}" for v in os.getloadavg())  # other processes skew the timings

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        write_subjects(root, args.subjects)
        dataset = find_dataset(root)
        ids = [s.id for s in dataset.subjects]
        size_mb = sum(s.image.stat().st_size for s in dataset.subjects) / len(ids) / 1e6

        start = time.perf_counter()
        cache = SliceCache.build(dataset, ids, Path(tmp) / "cache")
        cold = (time.perf_counter() - start) / len(ids)
        start = time.perf_counter()
        SliceCache.build(dataset, ids, Path(tmp) / "cache")
        warm = (time.perf_counter() - start) / len(ids)
        rates = {
            (augment, workers): loader_rate(cache, augment, workers, args.batch)
            for augment in (False, True)
            for workers in (0, 2)
        }
    train = training_rate(args.train_batch, args.train_steps)

    print(f"{args.subjects} volumes {'x'.join(map(str, SHAPE))} float32, {size_mb:.1f} MB .nii.gz")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"torch threads: {torch.get_num_threads()}; load average before/after: {before} / {load}")
    print("| measurement | value |")
    print("|---|---|")
    print(f"| decode + cache (cold), s per volume | {cold:.2f} |")
    print(f"| re-open valid cache, s per volume | {warm:.3f} |")
    for (augment, workers), rate in rates.items():
        label = f"loader, {'with' if augment else 'no'} augmentation, {workers} workers"
        print(f"| {label}, slices/s | {rate:.0f} (x{rate / train:.0f} training) |")
    print(f"| UNet++ training step at 224x192, batch {args.train_batch}, slices/s | {train:.1f} |")


if __name__ == "__main__":
    main()
