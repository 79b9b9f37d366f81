"""Figures from arrays: a per-subject overlay, and a Fig.-2-style grid comparing two runs.

Volumes are RAS arrays (X, Y, Z) with axial slices along Z; each subject is shown on the
axial slice with the largest ground-truth lesion area. Slices are drawn with anterior up and
the subject's right on the right (neurological convention). Figures are built on
``matplotlib.figure.Figure`` (Agg canvas, no pyplot global state), so this works headless.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from strokeseg.data.io import write_atomic
from strokeseg.evaluation.metrics import dice

GT_COLOR = "#00d000"
PRED_COLOR = "#ff3030"
PANEL_INCHES = 2.6


def largest_lesion_slice(gt: np.ndarray, axis: int = 2) -> int:
    """Index of the slice along ``axis`` with the most lesion voxels (middle slice if none)."""
    gt = np.asarray(gt, dtype=bool)
    area = np.count_nonzero(gt, axis=tuple(a for a in range(gt.ndim) if a != axis))
    return int(area.argmax()) if area.any() else gt.shape[axis] // 2


def _plane(volume: np.ndarray, index: int | None, axis: int) -> np.ndarray:
    """The 2D plane to draw: 2D input as is, 3D input at ``index`` along ``axis``."""
    volume = np.asarray(volume)
    if volume.ndim == 2:
        return volume
    if volume.ndim != 3:
        raise ValueError(f"expected a 2D slice or 3D volume, got shape {volume.shape}")
    return np.take(volume, index, axis=axis)


def _show(ax, image: np.ndarray, title: str) -> None:
    ax.imshow(image.T, cmap="gray", origin="lower", interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def _contour(ax, mask: np.ndarray, color: str, linewidth: float = 1.2) -> None:
    if np.any(mask):
        ax.contour(mask.T.astype(float), levels=[0.5], colors=color, linewidths=linewidth)


def overlay_figure(
    image: np.ndarray,
    gt: np.ndarray,
    pred: np.ndarray,
    *,
    title: str = "",
    axis: int = 2,
    slice_index: int | None = None,
) -> Figure:
    """Panels image | ground truth | prediction on the slice with the largest GT lesion.

    The prediction panel also shows the ground-truth contour, so misses and false positives
    are visible at a glance; the subject's 3D Dice is in its title.
    """
    index = largest_lesion_slice(gt, axis) if slice_index is None else slice_index
    img, g, p = (_plane(a, index, axis) for a in (image, gt, pred))
    fig = Figure(figsize=(3 * PANEL_INCHES, PANEL_INCHES + 0.4), layout="constrained")
    axes = fig.subplots(1, 3)
    where = f" (slice {index})" if np.ndim(image) == 3 else ""
    _show(axes[0], img, f"image{where}")
    _show(axes[1], img, "ground truth")
    _contour(axes[1], g, GT_COLOR)
    _show(axes[2], img, f"prediction (Dice {dice(pred, gt):.3f})")
    _contour(axes[2], g, GT_COLOR, linewidth=0.8)
    _contour(axes[2], p, PRED_COLOR)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def comparison_grid(
    subjects: Sequence[str],
    images: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    preds_a: Sequence[np.ndarray],
    preds_b: Sequence[np.ndarray],
    *,
    labels: tuple[str, str] = ("run A", "run B"),
    axis: int = 2,
) -> Figure:
    """Rows = subjects; columns image, ground truth, run A, run B (as in the paper's Fig. 2).

    Each row uses that subject's slice with the largest ground-truth lesion area; run
    columns show the prediction contour and the subject's 3D Dice for that run.
    """
    columns = (subjects, images, gts, preds_a, preds_b)
    if len({len(c) for c in columns}) != 1 or not subjects:
        raise ValueError("comparison_grid needs the same, non-zero number of each input")
    fig = Figure(
        figsize=(4 * PANEL_INCHES, len(subjects) * PANEL_INCHES + 0.3), layout="constrained"
    )
    axes = np.asarray(fig.subplots(len(subjects), 4)).reshape(len(subjects), 4)
    for row, (subject, image, gt, pred_a, pred_b) in enumerate(zip(*columns, strict=True)):
        index = largest_lesion_slice(gt, axis)
        img, g = _plane(image, index, axis), _plane(gt, index, axis)
        _show(axes[row, 0], img, subject)
        _show(axes[row, 1], img, "ground truth")
        _contour(axes[row, 1], g, GT_COLOR)
        for col, (label, pred) in enumerate(zip(labels, (pred_a, pred_b), strict=True), start=2):
            _show(axes[row, col], img, f"{label} (Dice {dice(pred, gt):.3f})")
            _contour(axes[row, col], _plane(pred, index, axis), PRED_COLOR)
    return fig


def save_figure(fig: Figure, path: str | Path, *, overwrite: bool = False, dpi: int = 120) -> Path:
    """Save ``fig`` as PNG atomically; refuse an existing file unless ``overwrite``."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return write_atomic(path, buffer.getvalue(), overwrite=overwrite)


def forest_plot(
    entries: Sequence[tuple[str, float, float, float, str]], title: str, xlabel: str
) -> Figure:
    """Paired differences as a forest plot: one line per (label, mean, CI low, CI high, note),
    top to bottom, with a dashed line at 0 (no difference); the note (n, p) at the right. A
    label starting with a space is a sub-entry (a stratum), drawn lighter."""
    fig = Figure(figsize=(7.5, 0.45 * len(entries) + 1.3), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(entries))[::-1]
    for yi, (label, mean, low, high, _) in zip(y, entries, strict=True):
        sub = label.startswith(" ")
        color, size = ("#7f9fcc", 4) if sub else ("#1f4e9c", 7)
        ax.plot([low, high], [yi, yi], color=color, linewidth=1.5 if sub else 2.5)
        ax.plot(mean, yi, "s", color=color, markersize=size)
    ax.axvline(0, color="gray", linestyle="--", linewidth=1)
    labels = [f"stratum {e[0].strip()}" if e[0].startswith(" ") else e[0] for e in entries]
    ax.set_yticks(y, labels, fontsize=9)
    for tick, entry in zip(ax.get_yticklabels(), entries, strict=True):
        tick.set_fontweight("normal" if entry[0].startswith(" ") else "bold")
    ax.set_ylim(-0.7, len(entries) - 0.3)
    right = ax.secondary_yaxis("right")
    right.set_yticks(y, [e[4] for e in entries], fontsize=8)
    right.tick_params(length=0)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig
