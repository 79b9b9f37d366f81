"""Whole-volume prediction of an ATLAS-sized scan (197x233x189) on this machine.

Times ``strokeseg.inference.predict.segment`` (normalise, slice, run the deployed network
on every axial slice, paste back) with the full-size deployed ``unetpp_mtl`` and reports the
process's peak resident memory. Weights are random: the cost does not depend on them.

    python benchmarks/predict.py [--batch-sizes 1 4 8] [--width 1.0]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import strokeseg
from strokeseg.data.io import load_volume
from strokeseg.inference.predict import segment
from strokeseg.synth import atlas


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--width", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        atlas.generate(Path(tmp), subjects=1, seed=0, overwrite=False, progress=False)
        scan = next(Path(tmp).rglob("*_T1w.nii.gz"))
        start = time.perf_counter()
        volume = load_volume(scan)
        load_s = time.perf_counter() - start
    network = strokeseg.deploy(strokeseg.create_model("unetpp_mtl", width=args.width))
    print(
        f"# {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads; scan {volume.data.shape}, read in {load_s:.1f} s; deployed unetpp_mtl "
        f"width {args.width}, {sum(p.numel() for p in network.parameters()):,} parameters"
    )
    print("\n| batch | seconds per scan | slices/s | peak RSS MiB |\n|---:|---:|---:|---:|")
    for batch in args.batch_sizes:
        start = time.perf_counter()
        mask = segment(network, volume, "mri", batch_size=batch)
        seconds = time.perf_counter() - start
        assert mask.shape == volume.data.shape and set(np.unique(mask)) <= {0, 1}
        print(
            f"| {batch} | {seconds:.1f} | {volume.data.shape[2] / seconds:.2f} "
            f"| {peak_rss_mib():.0f} |"
        )


if __name__ == "__main__":
    main()
