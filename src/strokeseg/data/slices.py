"""Axial slicing of RAS volumes, with an in-plane centre crop/pad to a multiple of 16.

Each in-plane size is rounded DOWN to a multiple of ``multiple`` by a centre crop (ATLAS
197 x 233 -> W 192 x H 224, the paper's input size) and padded with zeros up to ``multiple``
when it is smaller than that. :func:`from_slices` puts slices back exactly; the cropped-away
border comes back as 0. Inference uses ``pad=True`` instead: every size is padded up to the
next multiple, so no voxel of a scan goes unsegmented.
"""

from __future__ import annotations

import numpy as np


def target_size(n: int, multiple: int = 16, pad: bool = False) -> int:
    """``n`` rounded down (crop) or, with ``pad``, up to a multiple of ``multiple``."""
    rounded = -(-n // multiple) * multiple if pad else n // multiple * multiple
    return max(multiple, rounded)


def _spans(n: int, target: int) -> tuple[slice, slice]:
    """(source span, target span) of a centred crop (n > target) or pad (n < target)."""
    if n >= target:
        start = (n - target) // 2
        return slice(start, start + target), slice(0, target)
    start = (target - n) // 2
    return slice(0, n), slice(start, start + n)


def to_slices(array_ras: np.ndarray, multiple: int = 16, pad: bool = False) -> np.ndarray:
    """(X, Y, Z) -> (Z, H, W): H runs along Y (posterior->anterior), W along X (left->right).

    ``pad=True`` pads up to the multiple instead of cropping down, so no voxel is dropped
    (used at inference, where a lesion at the border must still be segmented).
    """
    x, y, z = array_ras.shape
    h, w = target_size(y, multiple, pad), target_size(x, multiple, pad)
    (sy, ty), (sx, tx) = _spans(y, h), _spans(x, w)
    out = np.zeros((z, h, w), dtype=array_ras.dtype)
    out[:, ty, tx] = np.transpose(array_ras[sx, sy, :], (2, 1, 0))
    return out


def from_slices(slices: np.ndarray, shape_ras: tuple[int, int, int]) -> np.ndarray:
    """Exact inverse of :func:`to_slices` for a volume of shape ``shape_ras`` (X, Y, Z)."""
    x, y, z = shape_ras
    _, h, w = slices.shape
    if slices.shape[0] != z:
        raise ValueError(f"{slices.shape[0]} slices for a volume with {z}")
    (sy, ty), (sx, tx) = _spans(y, h), _spans(x, w)
    out = np.zeros(shape_ras, dtype=slices.dtype)
    out[sx, sy, :] = np.transpose(slices[:, ty, tx], (2, 1, 0))
    return out


def stack_context(slices: np.ndarray, zs: np.ndarray, k: int) -> np.ndarray:
    """2.5D input: for each index in ``zs``, slices z-k..z+k of ``slices`` as channels, zeros
    beyond the first and last slice. ``slices`` is (Z, H, W), or (Z, M, H, W) for M input
    volumes (the scan and its mirror, ``data/mirror.py``): channel m * (2k+1) + c holds volume
    m's slice z - k + c (inferior to superior). Returns (len(zs), M * (2k+1), H, W); works on
    memory-mapped arrays."""
    zs = np.asarray(zs, dtype=np.int64)
    h, w = slices.shape[-2:]
    m = slices.shape[1] if slices.ndim == 4 else 1
    out = np.zeros((len(zs), m, 2 * k + 1, h, w), dtype=slices.dtype)
    for c, offset in enumerate(range(-k, k + 1)):
        idx = zs + offset
        inside = (idx >= 0) & (idx < len(slices))
        if inside.any():
            out[inside, :, c] = slices[idx[inside]].reshape(-1, m, h, w)
    return out.reshape(len(zs), m * (2 * k + 1), h, w)
