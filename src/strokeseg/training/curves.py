"""Training curves from Lightning's CSV log, as a PNG."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from strokeseg.data.io import atomic_path  # noqa: E402


def read_epoch_metrics(metrics_csv: Path) -> dict[str, dict[int, float]]:
    """``{metric: {epoch: value}}`` from ``metrics.csv``: the mean of the values logged in
    each epoch (training losses are logged every step, validation figures once)."""
    logged: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    with open(metrics_csv, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if not row.get("epoch"):
                continue
            epoch = int(float(row["epoch"]))
            for key, value in row.items():
                if key not in ("epoch", "step") and value not in ("", None):
                    logged[key][epoch].append(float(value))
    return {
        key: {epoch: sum(v) / len(v) for epoch, v in epochs.items()}
        for key, epochs in logged.items()
    }


def plot_curves(metrics_csv: Path, out_png: Path) -> Path:
    """Losses, the mean of each epoch's steps (left), and validation Dice (right) per epoch."""
    series = read_epoch_metrics(metrics_csv)
    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for name, values in sorted(series.items()):
        axis = ax_dice if name.startswith("val/dice") else ax_loss
        epochs = sorted(values)
        axis.plot(epochs, [values[e] for e in epochs], marker="o", label=name)
    ax_loss.set(title="losses (mean over each epoch's steps)", xlabel="epoch")
    ax_dice.set(
        title="validation Dice (pooled over slices; per subject)", xlabel="epoch", ylim=(0, 1)
    )
    for axis in (ax_loss, ax_dice):
        if axis.lines:
            axis.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(out_png, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return out_png
