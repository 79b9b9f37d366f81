"""Does the paper's loss, with delta = 10 from the first step, leave the all-background start?

Trains the paper's recipe (``atlas/table3_unetpp_mtl``: whole slices, slices drawn uniformly,
a batch of 8, Adam at 1e-3, Eq. 6 with delta = 10 from step one, fp32) at a reduced CPU scale
on a small SynthATLAS cohort (the one ``strokeseg synth atlas --subjects N --seed S`` writes),
twice from the same seed: as the paper has it, and with ``loss.delta_warmup`` (delta ramped
from 0 over that share of the steps; not in the paper). The reduced scale is the network's
width (``--width``, 0.25 by default: a sixteenth of the FLOPs) and the length of the run
(``--steps``); everything else is the paper's config. The cohort is split 70/30 into training
and validation subjects by the config's seed.

Printed: the mean mask loss (Eq. 2) and Laplacian loss (Eq. 5) per ``--window`` steps, then
at every validation (each ``--val-every`` steps, every 4th slice of the validation subjects)
the share of validation pixels predicted as lesion (p >= 0.5) against the true share, and the
per-subject and pooled Dice. A run has left the all-background plateau when it predicts at
least a tenth of the true lesion pixels with a pooled Dice of at least 0.1. Writes
``OUT/plateau.png`` (the two mask-loss curves) and keeps each run's folder (``OUT/paper``,
``OUT/warmup``); a finished run is re-used, so an interrupted call continues.

    python benchmarks/plateau.py --out plateau --subjects 12 --steps 300 --val-every 50
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib
import torch
from lightning.pytorch.callbacks import Callback

from strokeseg.synth import atlas
from strokeseg.training.config import load_config
from strokeseg.training.run import train

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


class ForegroundShare(Callback):
    """Logs the share of validation pixels predicted as lesion and truly lesion."""

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.counts = torch.zeros(3, dtype=torch.float64)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *_) -> None:
        with torch.no_grad():
            predicted = pl_module(batch["image"]) > 0
        truth = batch["mask"] > 0.5
        self.counts += torch.tensor([predicted.sum(), truth.sum(), truth.numel()]).double()

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        predicted, truth, pixels = self.counts.tolist()
        pl_module.log("val/predicted_share", predicted / pixels)
        pl_module.log("val/true_share", truth / pixels)


def run_variant(data: Path, out: Path, args: argparse.Namespace, warmup: float) -> Path:
    batches = args.val_every
    overrides = [
        f"model.kwargs.width={args.width}",
        "data.split=[0.7, 0.3, 0.0]",
        "data.val_slice_stride=4",
        f"optim.epochs={args.steps // batches}",
        f"trainer.limit_train_batches={batches}",
        "trainer.accelerator=cpu",
        f"loss.delta_warmup={warmup}",
        f"seed={args.seed}",
        *args.overrides,
    ]
    config = load_config("atlas/table3_unetpp_mtl", overrides)
    if not finished(out / "metrics.csv", config.optim.epochs * batches):
        train(config, data, out, callbacks=[ForegroundShare()], overwrite=True)
    return out / "metrics.csv"


def finished(metrics_csv: Path, steps: int) -> bool:
    """Whether a run logged its last step (an interrupted one is trained again from the start:
    its loss curve must begin at step 1)."""
    return metrics_csv.exists() and len(read_log(metrics_csv)[0]["train/loss_mask"]) >= steps


def read_log(metrics_csv: Path) -> tuple[dict[str, list[float]], list[dict[str, float]]]:
    """Per-step training losses and one record per validation, from Lightning's CSV log."""
    steps: dict[str, list[float]] = {"train/loss_mask": [], "train/loss_lap": []}
    validations = []
    with metrics_csv.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            for key in steps:
                if row.get(key):
                    steps[key].append(float(row[key]))
            if row.get("val/dice"):
                validations.append({k: float(v) for k, v in row.items() if v})
    return steps, validations


def left_plateau(record: dict[str, float]) -> bool:
    predicted, truth = record["val/predicted_share"], record["val/true_share"]
    return predicted >= 0.1 * truth and record["val/dice"] >= 0.1


def report(logs: dict[str, tuple], window: int) -> None:
    names = list(logs)
    print("mean over each window of steps: mask loss (Eq. 2) / Laplacian loss (Eq. 5)")
    print("| steps | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    longest = max(len(steps["train/loss_mask"]) for steps, _ in logs.values())
    for start in range(0, longest, window):
        cells = []
        for steps, _ in logs.values():
            mask = steps["train/loss_mask"][start : start + window]
            lap = steps["train/loss_lap"][start : start + window]
            cells.append(f"{sum(mask) / len(mask):.3f} / {sum(lap) / len(lap):.4f}" if mask else "")
        print(f"| {start + 1}-{start + window} | " + " | ".join(cells) + " |")
    print()
    print("| run | step | predicted / true lesion share | Dice per subject | pooled | left |")
    print("|---|---:|---|---:|---:|---|")
    for name, (_, validations) in logs.items():
        for v in validations:
            share = f"{v['val/predicted_share']:.5f} / {v['val/true_share']:.5f}"
            left = "yes" if left_plateau(v) else "no"
            print(
                f"| {name} | {int(v['step']) + 1} | {share} | {v['val/dice_subject']:.3f} "
                f"| {v['val/dice']:.3f} | {left} |"
            )


def plot(logs: dict[str, tuple], window: int, path: Path) -> None:
    figure, axes = plt.subplots(figsize=(6, 3.5))
    for name, (steps, _) in logs.items():
        losses = steps["train/loss_mask"]
        smooth = [
            sum(losses[max(0, i - window + 1) : i + 1]) / min(window, i + 1)
            for i in range(len(losses))
        ]
        axes.plot(range(1, len(losses) + 1), smooth, label=name)
    axes.set_xlabel("optimiser step")
    axes.set_ylabel(f"mask loss (Eq. 2), mean of {window} steps")
    axes.set_title("The paper's recipe: delta = 10 from step one vs a warm-up")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--subjects", type=int, default=12)
    parser.add_argument("--cohort-seed", type=int, default=11, help="the cohort's synth seed")
    parser.add_argument("--seed", type=int, default=0, help="the training seed")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--val-every", type=int, default=50, help="steps between validations")
    parser.add_argument("--window", type=int, default=25, help="steps per printed mean")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--warmup", type=float, default=0.25, help="loss.delta_warmup")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    if args.steps % args.val_every:
        parser.error("--steps must be a multiple of --val-every")
    data = args.out / "data"
    if not (data / "dataset_description.json").exists():
        atlas.generate(data, args.subjects, args.cohort_seed, overwrite=True, progress=False)
    logs = {
        "paper (delta = 10 from step 1)": read_log(
            run_variant(data, args.out / "paper", args, 0.0)
        ),
        f"warm-up over {args.warmup:g} of the steps": read_log(
            run_variant(data, args.out / "warmup", args, args.warmup)
        ),
    }
    report(logs, args.window)
    plot(logs, args.window, args.out / "plateau.png")


if __name__ == "__main__":
    main()
