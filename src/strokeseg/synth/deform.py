"""One synthetic subject's spatial difference from the template, as a sampling map.

``subject_coords`` gives, for every voxel of the head box, the template voxel it shows
(``out(x) = template(coords(x))``), composed of:

- individual anatomy: two smooth random displacement fields, one coarse (each component at
  most 3-6 mm, wavelengths of 10 cm and more: head size and shape) and one finer (at most
  1.5-3 mm, wavelengths down to about 4 cm: gyri and ventricles shift differently),
  independent per axis and per side, so the brain is no longer left-right symmetric;
- enlarged ventricles in ``ATROPHY_SHARE`` of the subjects: a radial expansion about the
  ventricles' centre (up to 3-4 mm at the ventricle wall);
- the ex-vacuo pull of a large lesion: the ventricle point nearest to a lesion of more than
  10 mL moves towards it by 1-5 mm (a Gaussian neighbourhood of 10 mm);
- a residual misregistration: rotations of sd 2 degrees, translations of sd 2 mm and scaling
  of sd 2 % per axis about the head's centre, as an affine registration to MNI leaves.
"""

from __future__ import annotations

import numpy as np

from strokeseg.synth.anatomy import Template, displacement, rotation
from strokeseg.synth.lesions import Lesions

ATROPHY_SHARE = 0.3
PULL_MIN_MM3 = 10_000.0


def subject_coords(
    rng: np.random.Generator,
    template: Template,
    head: tuple[slice, slice, slice],
    lesions: Lesions,
    atrophy: bool,
) -> np.ndarray:
    """Template voxel coordinates (3, *head shape) sampled by each voxel of the ``head`` box."""
    shape = tuple(s.stop - s.start for s in head)
    coords = displacement(rng, shape, rng.uniform(3.0, 6.0), n_basis=4)
    displacement(rng, shape, rng.uniform(1.5, 3.0), n_basis=10, out=coords)
    grid = np.ogrid[tuple(slice(float(s.start), float(s.stop)) for s in head)]
    grid = [g.astype(np.float32) for g in grid]
    for k in range(3):
        coords[k] += grid[k]
    ventricles = np.argwhere(template.ventricles).astype(np.float32)
    if atrophy:
        _expand(coords, grid, ventricles.mean(axis=0), rng.uniform(0.1, 0.3), sigma=20.0)
    volume = float(lesions.prob.sum())
    if volume > PULL_MIN_MM3:
        _pull(coords, grid, lesions, ventricles, min(5.0, 1.2 * (volume / PULL_MIN_MM3) ** (1 / 3)))
    return _misregister(rng, coords, np.array([(s.start + s.stop - 1) / 2 for s in head]))


def _gaussian(grid: list[np.ndarray], centre: np.ndarray, sigma: float) -> np.ndarray:
    """exp(-|x - centre|^2 / 2 sigma^2) over the grid (``grid``: open axes, as np.ogrid)."""
    d2 = sum((grid[k] - np.float32(centre[k])) ** 2 for k in range(3))
    return np.exp(-d2 / np.float32(2.0 * sigma * sigma))


def _expand(
    coords: np.ndarray, grid: list[np.ndarray], centre: np.ndarray, amount: float, sigma: float
) -> None:
    """Sample nearer the centre: the content there grows outward (enlarged ventricles)."""
    weight = np.float32(amount) * _gaussian(grid, centre, sigma)
    for k in range(3):
        coords[k] -= weight * (grid[k] - np.float32(centre[k]))


def _pull(
    coords: np.ndarray,
    grid: list[np.ndarray],
    lesions: Lesions,
    ventricles: np.ndarray,
    mm: float,
) -> None:
    """Move the ventricle point nearest to the lesion's centroid towards it by ``mm``."""
    box = lesions.bbox
    local = np.argwhere(lesions.prob[box] > 0.5)
    if local.size == 0 or ventricles.size == 0:
        return
    centroid = local.mean(axis=0) + [s.start for s in box]
    nearest = ventricles[np.argmin(((ventricles - centroid) ** 2).sum(axis=1))]
    direction = (centroid - nearest) / max(float(np.linalg.norm(centroid - nearest)), 1e-6)
    weight = np.float32(mm) * _gaussian(grid, nearest, 10.0)
    for k in range(3):  # out(x) = in(x - mm u w(x)): the content moves by +mm u
        coords[k] -= weight * np.float32(direction[k])


def _misregister(rng: np.random.Generator, coords: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """``centre + A (coords - centre) + t``: a small rotation, scaling and translation."""
    matrix = rotation(np.deg2rad(rng.normal(0.0, 2.0, 3))) * rng.normal(1.0, 0.02, 3)
    shift = rng.normal(0.0, 2.0, 3)
    for k in range(3):
        coords[k] -= np.float32(centre[k])
    out = np.tensordot(matrix.astype(np.float32), coords, axes=1)
    for k in range(3):
        out[k] += np.float32(centre[k] + shift[k])
    return out
