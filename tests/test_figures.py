"""Overlay and two-run comparison figures: right slice chosen, real PNGs written, no clobbering."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest

from strokeseg.errors import StrokesegError
from strokeseg.evaluation.figures import (
    comparison_grid,
    largest_lesion_slice,
    overlay_figure,
    save_figure,
)


def volumes(seed: int = 0):
    rng = np.random.default_rng(seed)
    image = rng.random((12, 10, 5)).astype(np.float32)
    gt = np.zeros((12, 10, 5), dtype=bool)
    gt[2:4, 2:4, 1] = True  # 4 voxels on slice 1
    gt[3:9, 3:8, 3] = True  # 30 voxels on slice 3: the largest
    pred = np.zeros_like(gt)
    pred[4:9, 3:8, 3] = True
    return image, gt, pred


def test_largest_lesion_slice():
    _, gt, _ = volumes()
    assert largest_lesion_slice(gt) == 3
    assert largest_lesion_slice(gt, axis=0) == 3  # x = 3 holds 2 + 5 voxels
    assert largest_lesion_slice(np.zeros((4, 4, 7), dtype=bool)) == 3  # no lesion: middle


def test_overlay_and_grid_are_written_as_png(tmp_path):
    image, gt, pred = volumes()
    overlay = save_figure(overlay_figure(image, gt, pred, title="s1"), tmp_path / "s1.png")
    pixels = matplotlib.image.imread(overlay)
    assert pixels.ndim == 3 and pixels.shape[1] > pixels.shape[0]  # three panels side by side
    grid = comparison_grid(
        ["s1", "s2"], [image, image], [gt, gt], [pred, gt], [gt, pred], labels=("unetpp", "mtl")
    )
    assert len(grid.axes) == 8  # 2 subjects x (image, GT, run A, run B)
    titles = [ax.get_title() for ax in grid.axes]
    assert titles[3] == "mtl (Dice 1.000)" and titles[4] == "s2"
    path = save_figure(grid, tmp_path / "fig2.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(StrokesegError, match="already exists"):
        save_figure(grid, path)
    save_figure(grid, path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig2.png", "s1.png"]


def test_grid_rejects_unequal_inputs():
    image, gt, pred = volumes()
    with pytest.raises(ValueError, match="same"):
        comparison_grid(["s1", "s2"], [image], [gt], [pred], [pred])


def test_epoch_metrics_are_the_mean_of_each_epochs_logged_values(tmp_path):
    from strokeseg.training.curves import plot_curves, read_epoch_metrics

    csv_file = tmp_path / "metrics.csv"
    csv_file.write_text(
        "epoch,step,train/loss,val/dice\n0,0,1.0,\n0,1,3.0,\n0,1,,0.25\n1,2,0.5,\n1,3,,0.75\n",
        encoding="utf-8",
    )
    series = read_epoch_metrics(csv_file)
    assert series == {"train/loss": {0: 2.0, 1: 0.5}, "val/dice": {0: 0.25, 1: 0.75}}
    png = plot_curves(csv_file, tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
