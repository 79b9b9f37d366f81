"""Report figures as PNG bytes: axial montage, orthogonal views, thumbnails, evaluation plots.

Volumes are RAS arrays (X, Y, Z). Slices are drawn in the neurological convention (the
subject's right on the image's right, anterior up in axial views), and every image says so
with R/L (or A/P) letters at its edges. Pixels keep their physical aspect ratio. Built on
``matplotlib.figure.Figure`` (Agg, no pyplot state), so it runs headless.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from scipy import ndimage

from strokeseg.evaluation.figures import GT_COLOR, PRED_COLOR

CONVENTION = "neurological convention: subject's right on the image's right"
MONTAGE_MAX = 24
MONTAGE_COLUMNS = 6
CONTEXT_SLICES = 2
PRED_RGB = to_rgb(PRED_COLOR)


def png(fig: Figure, dpi: int = 90) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()


def head_box(head: np.ndarray, margin: int = 4) -> tuple[slice, slice, slice]:
    """Bounding box of the head mask with a margin; the whole volume when it is empty.

    Along each axis, planes holding under 2 % of the fullest plane's head voxels are left out,
    so stray noise voxels far from the head do not widen the box.
    """
    box = []
    for axis, n in enumerate(head.shape):
        profile = np.count_nonzero(head, axis=tuple(a for a in range(head.ndim) if a != axis))
        keep = np.flatnonzero(profile > 0.02 * profile.max()) if profile.any() else []
        if not len(keep):
            return tuple(slice(0, m) for m in head.shape)
        box.append(slice(max(0, int(keep[0]) - margin), min(n, int(keep[-1]) + margin + 1)))
    return tuple(box)


def montage_slices(mask: np.ndarray, head_z: slice) -> list[int]:
    """Axial slices holding lesion plus CONTEXT_SLICES on each side, at most MONTAGE_MAX
    (evenly thinned); 12 slices spread over the head when the mask is empty."""
    depth = mask.shape[2]
    lesion = np.flatnonzero(np.asarray(mask).any(axis=(0, 1)))
    if not lesion.size:
        return sorted({int(v) for v in np.linspace(head_z.start, head_z.stop - 1, 12)})
    wanted = sorted(
        {int(k + d) for k in lesion for d in range(-CONTEXT_SLICES, CONTEXT_SLICES + 1)}
        & set(range(depth))
    )
    if len(wanted) > MONTAGE_MAX:
        keep = np.unique(np.linspace(0, len(wanted) - 1, MONTAGE_MAX).round().astype(int))
        wanted = [wanted[i] for i in keep]
    return wanted


def _panel(ax, image, mask, aspect: float, letters: tuple[str, str], title: str) -> None:
    ax.imshow(
        image.T, cmap="gray", origin="lower", vmin=0, vmax=1, aspect=aspect, interpolation="nearest"
    )
    if mask is not None and np.any(mask):
        ax.contour(mask.T.astype(float), levels=[0.5], colors=PRED_COLOR, linewidths=0.9)
    style = {"color": "yellow", "fontsize": 7, "fontweight": "bold", "va": "center"}
    ax.text(0.02, 0.5, letters[0], transform=ax.transAxes, ha="left", **style)
    ax.text(0.98, 0.5, letters[1], transform=ax.transAxes, ha="right", **style)
    ax.set_title(title, fontsize=7, pad=2)
    ax.set_axis_off()


def outlined(plane: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """An RGB image of a [0, 1] plane (RAS x, y) shown y-up, with the mask's border in red.

    The border is drawn as pixels (the mask minus its erosion, and the ring just outside),
    which costs a fraction of a matplotlib contour per panel.
    """
    mask = np.asarray(mask, dtype=bool)
    border = mask & ~ndimage.binary_erosion(mask) | ndimage.binary_dilation(mask) & ~mask
    rgb = np.repeat(np.clip(plane, 0, 1)[..., None], 3, axis=-1)
    rgb[border] = PRED_RGB
    return np.flipud(np.transpose(rgb, (1, 0, 2)))  # rows = y from anterior down, cols = x


def axial_montage(
    display: np.ndarray, mask: np.ndarray, spacing: tuple[float, ...], head: np.ndarray
) -> bytes:
    """Axial slices with lesion (and neighbours) with the mask outline, cropped to the head.

    The panels are tiled into one image (one imshow, slice numbers and R/L letters as text).
    """
    box = head_box(head)
    slices = montage_slices(mask, box[2])
    columns = min(MONTAGE_COLUMNS, len(slices))
    rows = -(-len(slices) // columns)
    width, height = box[0].stop - box[0].start, box[1].stop - box[1].start
    gap = 3
    tile = np.ones(((height + gap) * rows - gap, (width + gap) * columns - gap, 3))
    for n, k in enumerate(slices):
        r, c = divmod(n, columns)
        y, x = r * (height + gap), c * (width + gap)
        tile[y : y + height, x : x + width] = outlined(
            display[box[0], box[1], k], mask[box[0], box[1], k]
        )
    aspect = spacing[1] / spacing[0]
    inches = 1.75 * columns
    fig = Figure(figsize=(inches, inches * tile.shape[0] * aspect / tile.shape[1] + 0.3))
    ax = fig.add_axes((0, 0, 1, 1 - 0.3 / fig.get_figheight()))
    ax.imshow(tile, aspect=aspect, interpolation="nearest")
    ax.set_axis_off()
    style = {"color": "yellow", "fontsize": 7, "fontweight": "bold", "va": "center"}
    for n, k in enumerate(slices):
        r, c = divmod(n, columns)
        y, x = r * (height + gap), c * (width + gap)
        ax.text(x + 2, y + 2, f"{k}", color="white", fontsize=7, va="top", ha="left")
        ax.text(x + 2, y + height / 2, "L", ha="left", **style)
        ax.text(x + width - 2, y + height / 2, "R", ha="right", **style)
    fig.suptitle(
        f"Axial slices k, lesion outlined in red ({CONVENTION})", fontsize=8, y=0.995, va="top"
    )
    return png(fig)


def orthogonal_views(
    display: np.ndarray,
    mask: np.ndarray,
    spacing: tuple[float, ...],
    centre: tuple[int, ...],
    head: np.ndarray,
    through: str,
) -> bytes:
    """One coronal and one sagittal slice through ``centre`` (voxel indices, RAS)."""
    box = head_box(head)
    i, j = int(centre[0]), int(centre[1])
    fig = Figure(figsize=(6.4, 3.3))
    ax_cor, ax_sag = fig.subplots(1, 2)
    _panel(
        ax_cor,
        display[box[0], j, box[2]],
        mask[box[0], j, box[2]],
        spacing[2] / spacing[0],
        ("L", "R"),
        f"coronal {j} ({through})",
    )
    _panel(
        ax_sag,
        display[i, box[1], box[2]],
        mask[i, box[1], box[2]],
        spacing[2] / spacing[1],
        ("P", "A"),
        f"sagittal {i} (anterior on the right)",
    )
    fig.suptitle(CONVENTION, fontsize=8)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.86, wspace=0.05)
    return png(fig)


def thumbnail(
    display: np.ndarray, mask: np.ndarray, spacing: tuple[float, ...], k: int, head: np.ndarray
) -> bytes:
    """A small axial slice ``k`` with the mask outline (for the run index)."""
    box = head_box(head)
    fig = Figure(figsize=(1.3, 1.3 * (box[1].stop - box[1].start) / (box[0].stop - box[0].start)))
    ax = fig.add_axes((0, 0, 1, 1))
    _panel(
        ax,
        display[box[0], box[1], k],
        mask[box[0], box[1], k],
        spacing[1] / spacing[0],
        ("", ""),  # too small for letters; the index's column header states the convention
        "",
    )
    return png(fig, dpi=80)


def bland_altman(pred_ml: np.ndarray, true_ml: np.ndarray) -> bytes:
    """Difference (predicted - true) against the mean volume, with bias and 95 % limits."""
    pred_ml, true_ml = np.asarray(pred_ml, float), np.asarray(true_ml, float)
    mean, diff = (pred_ml + true_ml) / 2, pred_ml - true_ml
    bias, sd = float(diff.mean()), float(diff.std(ddof=1)) if diff.size > 1 else 0.0
    fig = Figure(figsize=(4.6, 3.4), layout="constrained")
    ax = fig.subplots()
    ax.scatter(mean, diff, s=16, color="#1f77b4")
    ax.axhline(bias, color="black", lw=1, label=f"bias {bias:+.2f} mL")
    for limit in (bias - 1.96 * sd, bias + 1.96 * sd):
        ax.axhline(limit, color="gray", lw=1, ls="--")
    ax.axhline(0, color="#999999", lw=0.5)
    ax.set_xlabel("mean of predicted and true volume (mL)", fontsize=8)
    ax.set_ylabel("predicted - true (mL)", fontsize=8)
    ax.set_title(f"Bland-Altman (dashed: bias ± 1.96 SD = {1.96 * sd:.2f} mL)", fontsize=8)
    ax.legend(fontsize=7, loc="best")
    ax.tick_params(labelsize=7)
    return png(fig)


def dice_by_size(true_ml: np.ndarray, dice: np.ndarray) -> bytes:
    """Per-subject Dice against the true lesion volume (log axis)."""
    true_ml, dice = np.asarray(true_ml, float), np.asarray(dice, float)
    fig = Figure(figsize=(4.6, 3.4), layout="constrained")
    ax = fig.subplots()
    shown = true_ml > 0
    ax.scatter(true_ml[shown], dice[shown], s=16, color="#d62728")
    if shown.any():
        ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("true lesion volume (mL, log scale)", fontsize=8)
    ax.set_ylabel("per-subject Dice", fontsize=8)
    ax.set_title(
        f"Dice by lesion size ({int((~shown).sum())} subject(s) without lesion not shown)",
        fontsize=8,
    )
    ax.tick_params(labelsize=7)
    return png(fig)


def subject_overlay(
    display: np.ndarray, gt: np.ndarray, pred: np.ndarray, spacing: tuple[float, ...], title: str
) -> bytes:
    """One axial slice (2D inputs) with the true (green) and predicted (red) outlines."""
    fig = Figure(figsize=(2.6, 2.9))
    ax = fig.add_axes((0, 0, 1, 0.88))
    _panel(ax, display, None, spacing[1] / spacing[0], ("L", "R"), "")
    for mask, color in ((gt, GT_COLOR), (pred, PRED_COLOR)):
        if np.any(mask):
            ax.contour(mask.T.astype(float), levels=[0.5], colors=color, linewidths=1.0)
    fig.suptitle(title, fontsize=7)
    return png(fig)
