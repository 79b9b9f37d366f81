"""Which voxels of a scan are segmented: the head, slice by slice, in boxes of 16.

Air around the head is most of a scan's slices; segmenting it costs time and finds nothing.
The rule (stated in docs/data.md):

1. The region: for a scan on the MNI152 grid (ATLAS: 197x233x189 at 1 mm, the affine of the
   ICBM152 2009a template within 1e-3 mm: :func:`strokeseg.data.template.on_mni_grid`) the
   template's brain mask (nilearn's rule: T1 above
   0.2 of its maximum); otherwise the head, the largest connected component (26-connected)
   of the voxels above a threshold: normalised MRI intensity 0.1 (the scale of
   :func:`strokeseg.data.intensity.normalize`), or -400 HU for CT (air is -1000, fat -100).
2. The region is dilated by ``margin_mm`` (4 mm: a box of that half-size in every axis, in
   voxels rounded up) and each axial slice that holds any of it gets the in-plane bounding
   box of the dilated region on that slice. Slices without it are not segmented.
3. Each box is grown to multiples of 16 on the grid of the whole-volume path (the slice
   zero-padded, centred, up to multiples of 16): its corners fall on that path's 16-pixel
   lattice, so the network's four 2x2 poolings see exactly the pixels they see there and a
   cropped slice differs from the whole slice only through what lies outside its box.
4. A network that only runs on the grid it was trained on (``grid_bound``: Swin-Unet,
   TransUNet) gets boxes of that grid instead, centred on the region's box (larger regions are
   covered by sliding windows of the grid at inference).

Voxels outside every box are 0 in the mask. A model trained with ``data.zero_outside_crop``
saw every training slice with the voxels outside its box set to 0 (the normalised intensity of
air), so it never learnt from the skull and scalp that the crop cuts away; ``--no-crop`` then
zeroes the same voxels of its input (:func:`inside`), and the two paths differ only by the zero
padding at the box edge inside the network. ``whole_plan`` is the exact whole-volume path
(``--no-crop``): every slice, padded up to multiples of 16 as ``to_slices(pad=True)`` does.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from strokeseg.data.components import largest
from strokeseg.data.intensity import normalize
from strokeseg.data.slices import target_size

MULTIPLE = 16
MARGIN_MM = 4.0
MRI_HEAD = 0.1  # normalised intensity: background noise is below it, any tissue above
CT_HEAD_HU = -400.0
MAX_SIZES = 8


@dataclass(frozen=True)
class SlicePlan:
    """Boxes to segment: one row ``(z, y0, y1, x0, x1)`` per axial slice, RAS voxel indices.

    A box may reach outside the volume (the outside reads as 0). Slices in the network's
    layout: H along Y, W along X, as :func:`strokeseg.data.slices.to_slices`.
    """

    shape: tuple[int, int, int]
    boxes: np.ndarray  # (n, 5) int64

    @property
    def work(self) -> int:
        """Pixels the network runs on (the whole-volume path's is the reference)."""
        b = self.boxes
        return int(((b[:, 2] - b[:, 1]) * (b[:, 4] - b[:, 3])).sum())

    def groups(self, batch_size: int) -> Iterator[np.ndarray]:
        """Row indices in batches of at most ``batch_size`` boxes of one size, in slice order."""
        sizes = self.boxes[:, 2] - self.boxes[:, 1], self.boxes[:, 4] - self.boxes[:, 3]
        keys = sizes[0] * 100_000 + sizes[1]
        for key in np.unique(keys):
            rows = np.flatnonzero(keys == key)
            for start in range(0, len(rows), batch_size):
                yield rows[start : start + batch_size]

    def extract(self, image: np.ndarray, rows: np.ndarray, context: int = 0) -> np.ndarray:
        """``(B, M * (2 * context + 1), H, W)`` float32 crops of ``image`` for ``rows``:
        ``image`` is RAS (X, Y, Z), or (M, X, Y, Z) for M input volumes, channels ordered as
        :func:`strokeseg.data.slices.stack_context` orders them.

        Context slices beyond the volume's ends are zeros.
        """
        z, y0, y1, x0, x1 = self.boxes[rows[0]]
        m = image.shape[0] if image.ndim == 4 else 1
        out = np.zeros((len(rows), m, 2 * context + 1, y1 - y0, x1 - x0), dtype=np.float32)
        nx, ny, nz = self.shape
        for b, (z, y0, y1, x0, x1) in enumerate(self.boxes[rows]):
            (sx, tx), (sy, ty) = _overlap(x0, x1, nx), _overlap(y0, y1, ny)
            for c, zc in enumerate(range(z - context, z + context + 1)):
                if 0 <= zc < nz:
                    out[b, :, c, ty, tx] = np.swapaxes(image[..., sx, sy, zc], -1, -2)
        return out.reshape(len(rows), -1, *out.shape[-2:])

    def paste(self, out: np.ndarray, rows: np.ndarray, values: np.ndarray) -> None:
        """Write ``values`` (B, H, W) of ``rows`` into the RAS volume ``out`` (inside it only)."""
        nx, ny, _ = self.shape
        for value, (z, y0, y1, x0, x1) in zip(values, self.boxes[rows], strict=True):
            (sx, tx), (sy, ty) = _overlap(x0, x1, nx), _overlap(y0, y1, ny)
            out[sx, sy, z] = value[ty, tx].T


def inside(plan: SlicePlan) -> np.ndarray:
    """Bool RAS mask of the voxels inside the plan's boxes (the parts within the volume)."""
    out = np.zeros(plan.shape, dtype=bool)
    nx, ny, _ = plan.shape
    for z, y0, y1, x0, x1 in plan.boxes:
        (sx, _), (sy, _) = _overlap(x0, x1, nx), _overlap(y0, y1, ny)
        out[sx, sy, z] = True
    return out


def _overlap(start: int, stop: int, n: int) -> tuple[slice, slice]:
    """(volume span, box span) of the part of [start, stop) inside [0, n)."""
    lo, hi = max(start, 0), min(stop, n)
    return slice(lo, max(lo, hi)), slice(lo - start, max(lo, hi) - start)


def lattice_offset(n: int, multiple: int = MULTIPLE) -> int:
    """Where the whole-volume path puts voxel 0: it pads ``n`` to a multiple, centred."""
    return (target_size(n, multiple, pad=True) - n) // 2


def aligned_span(lo: int, hi: int, n: int, multiple: int = MULTIPLE) -> tuple[int, int]:
    """The smallest [start, stop) holding voxels lo..hi, ends on the whole path's lattice."""
    offset = lattice_offset(n, multiple)
    start = (lo + offset) // multiple * multiple - offset
    stop = -(-(hi + 1 + offset) // multiple) * multiple - offset
    return start, stop


def whole_plan(shape: tuple[int, int, int], multiple: int = MULTIPLE) -> SlicePlan:
    """The exact whole-volume path: every slice, padded centred up to multiples of 16."""
    nx, ny, nz = shape
    y0, x0 = -lattice_offset(ny, multiple), -lattice_offset(nx, multiple)
    y1, x1 = y0 + target_size(ny, multiple, True), x0 + target_size(nx, multiple, True)
    boxes = np.array([[z, y0, y1, x0, x1] for z in range(nz)], dtype=np.int64).reshape(-1, 5)
    return SlicePlan(tuple(shape), boxes)


def mask_plan(
    region: np.ndarray, margin: tuple[int, int, int], multiple: int = MULTIPLE
) -> SlicePlan:
    """Boxes of ``region`` (bool, RAS) dilated by ``margin`` voxels per axis (a box element)."""
    nx, ny, nz = region.shape
    mx, my, mz = margin
    along_x, along_y = region.any(axis=1), region.any(axis=0)  # (X, Z) and (Y, Z)
    present = along_x.any(axis=0)
    big = np.iinfo(np.int64).max // 4
    lows, highs = [], []
    for along, n in ((along_y, ny), (along_x, nx)):
        index = np.arange(n)[:, None]
        lows.append(np.where(along, index, big).min(axis=0))
        highs.append(np.where(along, index, -big).max(axis=0))
    size = 2 * mz + 1  # the dilation along z: union of the boxes of the neighbouring slices
    lows = [ndi.minimum_filter1d(v, size, mode="constant", cval=big) for v in lows]
    highs = [ndi.maximum_filter1d(v, size, mode="constant", cval=-big) for v in highs]
    near = ndi.maximum_filter1d(present.astype(np.uint8), size, mode="constant") > 0
    rows = []
    for z in np.flatnonzero(near):
        y0, y1 = aligned_span(lows[0][z] - my, highs[0][z] + my, ny, multiple)
        x0, x1 = aligned_span(lows[1][z] - mx, highs[1][z] + mx, nx, multiple)
        rows.append([z, y0, y1, x0, x1])
    return SlicePlan(region.shape, np.array(rows, dtype=np.int64).reshape(-1, 5))


def _grow(boxes: np.ndarray, heights: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Boxes grown (never shrunk) to ``heights`` x ``widths``, centred on themselves.

    Growth is split in steps of 16 where the sizes allow, so a lattice-aligned box stays
    aligned; otherwise it is centred exactly.
    """
    boxes = boxes.copy()
    for axis, target in ((1, heights), (3, widths)):
        lo, hi = boxes[:, axis], boxes[:, axis + 1]
        grow = np.maximum(target - (hi - lo), 0)
        before = np.where(grow % MULTIPLE == 0, grow // (2 * MULTIPLE) * MULTIPLE, grow // 2)
        boxes[:, axis] = lo - before
        boxes[:, axis + 1] = hi + grow - before
    return boxes


def fit_grid(plan: SlicePlan, grid: tuple[int, int]) -> SlicePlan:
    """Every box at least ``grid`` (H, W), centred on the original box (rule 4)."""
    n = len(plan.boxes)
    return SlicePlan(plan.shape, _grow(plan.boxes, np.full(n, grid[0]), np.full(n, grid[1])))


def merge_sizes(plan: SlicePlan, max_sizes: int = MAX_SIZES) -> SlicePlan:
    """Boxes of at most ``max_sizes`` sizes: runs of consecutive slices share one size.

    Each new input size costs the convolution library a set-up (a tenth of a second for a
    quarter-width UNet++ on this machine), and per-slice boxes come in 20-30 sizes. The
    slices are cut into at most ``max_sizes`` runs, each grown to its largest height and
    width, choosing the cuts that minimise the pixels computed (exact dynamic programming).
    """
    b = plan.boxes
    n = len(b)
    if n == 0 or max_sizes < 1:
        return plan
    h, w = b[:, 2] - b[:, 1], b[:, 4] - b[:, 3]
    cost = np.full((n + 1, n + 1), np.inf)  # cost[i, j]: slices i..j-1 at one size
    for i in range(n):
        hh, ww = np.maximum.accumulate(h[i:]), np.maximum.accumulate(w[i:])
        cost[i, i + 1 :] = np.arange(1, n - i + 1) * hh * ww
    best = np.full((max_sizes + 1, n + 1), np.inf)
    best[0, 0] = 0
    cut = np.zeros((max_sizes + 1, n + 1), dtype=np.int64)
    for k in range(1, max_sizes + 1):
        for j in range(1, n + 1):
            c = best[k - 1, :j] + cost[:j, j]
            cut[k, j] = int(np.argmin(c))
            best[k, j] = c[cut[k, j]]
    k, j = int(np.argmin(best[:, n])), n
    heights, widths = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    while j > 0:
        i = cut[k, j]
        heights[i:j], widths[i:j] = h[i:j].max(), w[i:j].max()
        k, j = k - 1, i
    return SlicePlan(plan.shape, _grow(b, heights, widths))


@functools.lru_cache(maxsize=1)
def template_brain() -> np.ndarray | None:
    """The brain mask of the ICBM152 2009a template (on the MNI152 grid), or None without
    nilearn."""
    import nibabel as nib

    from strokeseg.data.template import BRAIN_THRESHOLD, template_file
    from strokeseg.errors import StrokesegError

    try:
        t1 = nib.load(template_file("t1")).get_fdata(dtype=np.float32)
    except StrokesegError:
        return None
    return t1 > BRAIN_THRESHOLD * t1.max()


def head_mask(image: np.ndarray, modality: str, normalised: np.ndarray | None = None) -> np.ndarray:
    """The largest 26-connected component above the head threshold (empty if none);
    ``normalised``: the MRI ``image`` already normalised, if at hand."""
    if modality == "mri":
        above = (normalize(image, "mri") if normalised is None else normalised) > MRI_HEAD
    else:
        above = image > CT_HEAD_HU
    return largest(above)


def region_plan(
    region: np.ndarray,
    spacing: tuple[float, float, float],
    margin_mm: float = MARGIN_MM,
    max_sizes: int = MAX_SIZES,
) -> SlicePlan:
    """The slices and boxes to segment around ``region`` (bool, RAS; the module docstring's
    rules 2-3), on a grid of ``spacing`` mm. ``max_sizes``: see :func:`merge_sizes` (0: every
    slice keeps its own box)."""
    margin = tuple(int(np.ceil(margin_mm / s - 1e-6)) for s in spacing)
    return merge_sizes(mask_plan(region, margin), max_sizes)
