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
    """``{metric: {epoch: value}}`` from ``metrics.csv`` (last value logged in each epoch)."""
    series: dict[str, dict[int, float]] = defaultdict(dict)
    with open(metrics_csv, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if not row.get("epoch"):
                continue
            epoch = int(float(row["epoch"]))
            for key, value in row.items():
                if key not in ("epoch", "step") and value not in ("", None):
                    series[key][epoch] = float(value)
    return dict(series)


def plot_curves(metrics_csv: Path, out_png: Path) -> Path:
    """Losses (left) and validation Dice (right) per epoch."""
    series = read_epoch_metrics(metrics_csv)
    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(10, 4))
    for name, values in sorted(series.items()):
        axis = ax_dice if name == "val/dice" else ax_loss
        epochs = sorted(values)
        axis.plot(epochs, [values[e] for e in epochs], marker="o", label=name)
    ax_loss.set(title="losses", xlabel="epoch")
    ax_dice.set(title="validation Dice (pooled over slices)", xlabel="epoch", ylim=(0, 1))
    for axis in (ax_loss, ax_dice):
        if axis.lines:
            axis.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(out_png, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return out_png
