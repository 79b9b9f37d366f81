"""The crop rule's margin and number of box sizes: work and seconds per scan, side by side.

One ATLAS-sized SynthATLAS scan (197x233x189, MNI152 grid), a deployed UNet++ with random
weights (the cost does not depend on them) at each width, eager PyTorch: the whole-volume path
(``--no-crop``) and the crop at each (margin mm, most box sizes) setting, in one process, in
the order of the table. ``work`` is the share of the whole-volume path's pixels the boxes hold.

    python benchmarks/crop_rule.py [--widths 0.25 1.0] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

SETTINGS = [(None, None), (8.0, 4), (4.0, 8), (4.0, 16), (2.0, 16), (12.0, 8), (20.0, 8)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=float, nargs="+", default=[0.25, 1.0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import strokeseg
    from strokeseg.data.crop import region_plan, whole_plan
    from strokeseg.data.io import load_volume
    from strokeseg.data.preprocessing import Preprocessing, prepare
    from strokeseg.inference.runtime import make_runtime
    from strokeseg.inference.slicing import run_plan
    from strokeseg.synth import atlas

    with tempfile.TemporaryDirectory() as tmp:
        atlas.generate(Path(tmp), subjects=1, seed=0, overwrite=False, progress=False)
        volume = load_volume(next(Path(tmp).rglob("*_T1w.nii.gz")))
    scan = prepare(volume, Preprocessing("mri"))
    image = scan.image
    whole = whole_plan(volume.data.shape).work
    print(
        f"scan {volume.data.shape}, torch {torch.__version__}, {args.threads} threads, eager\n\n"
        "| width | setting | slices | work | seconds per scan |\n|---:|---|---:|---:|---:|"
    )
    for width in args.widths:
        torch.manual_seed(0)
        network = strokeseg.deploy(strokeseg.create_model("unetpp", width=width, norm="batch"))
        run = make_runtime(network, "eager", args.threads)
        for margin, sizes in SETTINGS:
            if margin is None:
                plan, name = whole_plan(volume.data.shape), "no-crop"
            else:
                plan = region_plan(scan.region, scan.spacing, margin, sizes)
                name = f"crop, margin {margin:g} mm, at most {sizes} sizes"
            start = time.perf_counter()
            run_plan([run], image, plan)
            seconds = time.perf_counter() - start
            print(
                f"| {width:g} | {name} | {len(plan.boxes)} | {plan.work / whole:.3f} "
                f"| {seconds:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
