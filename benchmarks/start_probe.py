"""Does a recipe leave the all-background start? The first steps of a training, in a plain loop.

Trains ``--config`` (default: the demo recipe, with ``--set`` overrides) on a dataset whose
split is given by a run folder's ``split.json`` for ``--steps`` of the ``--total`` steps of its
schedule (cosine over ``--total``; ``loss.delta_warmup`` as in training), and prints the mean
mask loss per 25 steps, then the per-subject Dice (p >= 0.5) on every ``val_slice_stride``-th
validation slice. No checkpoint, no Lightning: minutes instead of a full run.

    python benchmarks/start_probe.py --data demo/data --split demo/run/split.json \\
        --steps 200 --total 600 [--set loss.delta=0 ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch

from strokeseg.data.layouts import find_dataset
from strokeseg.training.config import load_config
from strokeseg.training.datamodule import SliceDataModule
from strokeseg.training.module import SegmentationModule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="demo")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", type=Path, required=True, help="a run's split.json")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--total", type=int, default=600, help="steps of the schedule")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()

    config = load_config(args.config, args.overrides)
    dataset = find_dataset(args.data, config.data.layout)
    split = json.loads(args.split.read_text(encoding="utf-8"))
    L.seed_everything(config.seed, workers=True, verbose=False)
    module = SegmentationModule(config)
    cache = Path(config.data.cache_dir) if config.data.cache_dir else Path(tempfile.mkdtemp())
    data = SliceDataModule(dataset, split, cache, config)
    data.setup("fit")
    optimizer = torch.optim.Adam(module.parameter_groups(), lr=config.optim.lr)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.total)
    warmup = module.delta_warmup * args.total
    print(f"# {' '.join(args.overrides) or 'the recipe as it is'}; {args.steps} of {args.total}")
    module.train()
    start, step, losses = time.perf_counter(), 0, []
    while step < args.steps:
        for batch in data.train_dataloader():
            weight = min(1.0, step / warmup) if warmup else 1.0
            terms = module.criterion(module.model(batch["image"]), batch["mask"], weight)
            optimizer.zero_grad()
            terms["loss"].backward()
            optimizer.step()
            cosine.step()
            losses.append(float(terms["loss_mask"]))
            step += 1
            if step % 25 == 0:
                mean = np.mean(losses[-25:])
                print(
                    f"step {step}: mask loss {mean:.3f} ({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )
            if step >= args.steps:
                break
    module.eval()
    sums: dict[int, np.ndarray] = {}
    with torch.no_grad():
        for batch in data.val_dataloader():
            predicted, truth = module.model(batch["image"]) > 0, batch["mask"] > 0.5
            for i, subject in enumerate(batch["subject"].tolist()):
                counts = [(predicted[i] & truth[i]).sum(), predicted[i].sum(), truth[i].sum()]
                sums[subject] = sums.get(subject, 0) + np.array([float(c) for c in counts])
    dice = [2 * o / (p + t) if p + t else 1.0 for o, p, t in sums.values()]
    predicted, truth = (sum(v[k] for v in sums.values()) for k in (1, 2))
    print(
        f"validation: per-subject Dice {np.mean(dice):.3f} over {len(dice)} subjects; "
        f"predicted {predicted:.0f} lesion pixels, truth {truth:.0f}"
    )


if __name__ == "__main__":
    main()
