"""Random stroke lesions on the template grid: irregular, clustered in one hemisphere, soft-edged.

Each subject gets 1-4 lesions in one hemisphere. The first centre is drawn with probability
proportional to white/grey matter; the others cluster around it (one vascular territory).
A lesion's shape is a union of random ellipsoids whose implicit surface is perturbed by
smoothed noise; a logistic ramp across that surface gives a partial-volume lesion
probability, so the border is blurred and the reference mask is its 0.5 level. The total
volume per subject comes from a :class:`VolumeDistribution` (``ATLAS_R2``: a truncated
log-normal fitted to ATLAS R2.0's published figures; see ``docs/synthetic.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.special import expit, ndtr, ndtri

from strokeseg.synth.anatomy import Template, hemisphere_mask


@dataclass(frozen=True)
class VolumeDistribution:
    """Total lesion volume per subject (mm3): log-normal (``sigma`` > 0) or log-uniform
    (``sigma`` = 0) in ``ln(volume)``, truncated to [``low``, ``high``] mm3."""

    median: float
    sigma: float
    low: float
    high: float

    def draw(self, rng: np.random.Generator) -> float:
        lo, hi = np.log(self.low), np.log(self.high)
        if self.sigma == 0:
            return float(np.exp(rng.uniform(lo, hi)))
        mu = np.log(self.median)
        a, b = ndtr((lo - mu) / self.sigma), ndtr((hi - mu) / self.sigma)
        return float(np.exp(mu + self.sigma * ndtri(rng.uniform(a, b))))  # inverse-CDF draw

    def cdf(self, volume: float) -> float:
        """P(total volume <= ``volume``) under the truncated distribution."""
        lo, hi, v = (
            np.log(self.low),
            np.log(self.high),
            np.log(np.clip(volume, self.low, self.high)),
        )
        if self.sigma == 0:
            return float((v - lo) / (hi - lo))
        mu = np.log(self.median)
        a, b = ndtr((lo - mu) / self.sigma), ndtr((hi - mu) / self.sigma)
        return float((ndtr((v - mu) / self.sigma) - a) / (b - a))


# ATLAS R2.0 (Liew et al., Scientific Data 2022), 655 training cases: median 5 mL, range
# 0.01-497 mL. Log-normal with the published median; sigma = 1.74 makes the published extremes
# the expected extremes of 655 draws (Blom: z = 3.105 for n = 655; (ln 497 - ln 0.01) / (2 z)).
# Truncated at 2.8e5 mm3, the largest lesion set that fits one hemisphere of the template.
# P(< 1 mL) = 0.18.
ATLAS_R2 = VolumeDistribution(median=5_000.0, sigma=1.74, low=10.0, high=2.8e5)
# The first SynthATLAS draw, kept for comparison: log-uniform over 10 mm3-2.8e5 mm3 (median
# 1.7 mL, 45 % under 1 mL).
LOG_UNIFORM = VolumeDistribution(median=0.0, sigma=0.0, low=10.0, high=2.8e5)
VOLUME_DISTRIBUTIONS = {"atlas": ATLAS_R2, "loguniform": LOG_UNIFORM}


@dataclass(frozen=True)
class Lesions:
    """Lesion maps on the template grid (float32, zero outside ``bbox``)."""

    prob: np.ndarray  # partial-volume lesion probability in [0, 1]
    severity: np.ndarray  # how strongly each voxel departs from healthy tissue, in [0, ~1.3]
    bbox: tuple[slice, slice, slice]  # box holding every non-zero voxel
    hemisphere: str  # "L", "R" or "B" (both)
    count: int
    sources: tuple[int, ...] = ()  # real masks used (SOOP subject ids), empty for ellipsoids


def draw_lesions(
    rng: np.random.Generator,
    template: Template,
    volumes: VolumeDistribution = ATLAS_R2,
    allowed: np.ndarray | None = None,
) -> Lesions:
    """Draw one subject's lesions; ``allowed`` (bool, template grid) further limits the centres."""
    hemisphere = str(rng.choice(["L", "R"]))
    region = hemisphere_mask(template, hemisphere) & template.brain
    if allowed is not None:
        region = region & allowed
    parenchyma = np.clip((template.gm + template.wm) / 0.6, 0.0, 1.0) * region
    weight = (template.wm + 0.7 * template.gm) * region
    candidates = np.flatnonzero(weight)
    cdf = np.cumsum(weight.ravel()[candidates], dtype=np.float64)

    total = volumes.draw(rng)
    count = int(rng.integers(1, 5))
    shares = rng.dirichlet(np.full(count, 0.8))
    prob = np.zeros(template.shape, np.float32)
    severity = np.zeros(template.shape, np.float32)
    lo, hi = np.array(template.shape), np.zeros(3, int)
    first = _sample_voxel(rng, candidates, cdf, template.shape)
    for i, share in enumerate(shares):
        centre = first if i == 0 else _near(rng, first, weight, candidates, cdf)
        box = _add_lesion(rng, prob, severity, parenchyma, centre, total * share)
        lo = np.minimum(lo, [s.start for s in box])
        hi = np.maximum(hi, [s.stop for s in box])
    bbox = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    return Lesions(prob, severity, bbox, hemisphere, count)


def _sample_voxel(
    rng: np.random.Generator, candidates: np.ndarray, cdf: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    """A voxel drawn with probability proportional to weight (``cdf`` over ``candidates``)."""
    pick = min(int(np.searchsorted(cdf, rng.uniform(0.0, cdf[-1]), side="right")), cdf.size - 1)
    return np.array(np.unravel_index(candidates[pick], shape))


def _near(
    rng: np.random.Generator,
    first: np.ndarray,
    weight: np.ndarray,
    candidates: np.ndarray,
    cdf: np.ndarray,
) -> np.ndarray:
    """A centre near the first lesion (sd 15 mm) on tissue, else anywhere on tissue."""
    for _ in range(20):
        candidate = np.round(first + rng.normal(0.0, 15.0, 3)).astype(int)
        inside = np.all(candidate >= 0) and np.all(candidate < weight.shape)
        if inside and weight[tuple(candidate)] > 0.3:
            return candidate
    return _sample_voxel(rng, candidates, cdf, weight.shape)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def smooth_noise(
    rng: np.random.Generator, shape: tuple[int, ...], sigma: float, channels: int
) -> np.ndarray:
    """Unit-variance Gaussian-smoothed noise, made on a coarse grid for large ``sigma``."""
    step = max(1, int(sigma // 2))
    coarse = tuple(-(-n // step) + 2 for n in shape)
    out = []
    for _ in range(channels):
        noise = ndi.gaussian_filter(rng.standard_normal(coarse).astype(np.float32), sigma / step)
        noise /= noise.std() + 1e-6
        if step > 1:
            noise = ndi.zoom(
                noise,
                [n / c for n, c in zip(shape, coarse, strict=True)],
                order=1,
                grid_mode=True,
                mode="nearest",
            )
        out.append(noise[tuple(slice(0, n) for n in shape)])
    return np.stack(out)


def _add_lesion(
    rng: np.random.Generator,
    prob: np.ndarray,
    severity: np.ndarray,
    parenchyma: np.ndarray,
    centre: np.ndarray,
    volume: float,
) -> tuple[slice, slice, slice]:
    """Paint one lesion of about ``volume`` mm3 into ``prob``/``severity``; return its box."""
    shape_log = rng.normal(0.0, 0.3, 3)
    ellipsoids = [(np.zeros(3), np.exp(shape_log - shape_log.mean()))]  # unit-volume sphere
    for _ in range(int(rng.integers(0, 4))):
        direction = rng.standard_normal(3)
        offset = direction / np.linalg.norm(direction) * rng.uniform(0.4, 0.9)
        ellipsoids.append((offset, rng.uniform(0.3, 0.65) * np.exp(rng.normal(0, 0.2, 3))))
    # size the union so the sum of the ellipsoid volumes (an upper bound) is ``volume``
    unit = sum(np.prod(axes) for _, axes in ellipsoids)
    radius = (3.0 * volume / (4.0 * np.pi * unit)) ** (1.0 / 3.0)
    ellipsoids = [(offset * radius, axes * radius) for offset, axes in ellipsoids]
    width = rng.uniform(0.7, 2.0)  # partial-volume ramp (mm)
    amplitude = 0.3 * radius
    extent = max(np.abs(o).max() + a.max() for o, a in ellipsoids) + amplitude + 4 * width + 2
    lo = np.maximum(np.floor(centre - extent), 0).astype(int)
    hi = np.minimum(np.ceil(centre + extent) + 1, prob.shape).astype(int)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    grid = np.ogrid[box]
    rel = [g.astype(np.float32) - c for g, c in zip(grid, centre, strict=True)]

    inside = np.full(tuple(hi - lo), -np.inf, np.float32)
    for offset, axes in ellipsoids:
        rot = _random_rotation(rng)
        rho2 = 0.0
        for k in range(3):  # coordinate along the ellipsoid's k-th axis
            q = sum(rot[j, k] * (rel[j] - offset[j]) for j in range(3))
            rho2 = rho2 + (q / axes[k]) ** 2
        np.maximum(inside, (1.0 - np.sqrt(rho2)) * axes.mean(), out=inside)
    noise = smooth_noise(rng, inside.shape, max(1.0, 0.3 * radius), channels=2)
    p = expit((inside + amplitude * noise[0]) / width).astype(np.float32) * parenchyma[box]
    strength = rng.uniform(0.25, 1.0)
    texture = np.clip(1.0 + 0.2 * noise[1], 0.6, 1.3)
    np.maximum(prob[box], p, out=prob[box])
    np.maximum(severity[box], p * strength * texture, out=severity[box])
    return box
