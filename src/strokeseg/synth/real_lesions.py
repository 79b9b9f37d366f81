"""Real stroke lesion shapes with a chronic T1 appearance (SynthATLAS's default lesions).

The shapes are the SOOP lesion masks (1,086 acute strokes traced by experts and warped to 1 mm
MNI space by the dataset's authors; CC0; ``assets/README.md``). Per subject:

- a total volume from a :class:`~strokeseg.synth.lesions.VolumeDistribution` (ATLAS R2.0's
  by default) split over 1-3 masks (probabilities 0.7 / 0.2 / 0.1, Dirichlet shares); for
  each share the library mask of the nearest volume among 64 drawn at random, scaled by at
  most 25 % in volume towards it. Masks keep their real place in MNI space, bilateral and
  midline ones as they come; the first is mirrored left-right with probability 0.5 (so the
  library's side preference does not carry over) and the others join its hemisphere (most
  multiple infarcts share a territory), moved by a small rigid jitter (sd 3
  degrees, 2 mm) and a smooth elastic change (at most 1.5 mm), resampled by world
  coordinates onto the template grid (linear, so the border is a partial-volume ramp) and
  kept inside the brain;
- a chronic appearance (cavitated infarcts are CSF-like on T1, surrounded by a gliotic,
  partial-volume rim of intermediate signal): voxels deeper than a rim of 1-3 mm inside the
  lesion move to 75-100 % of the way to CSF, the rim to 20-55 %, with a smooth texture.

The ex-vacuo pull of the nearest ventricle towards a large lesion is a deformation, made
with the subject's other deformations (``synth/atlas.py``).
"""

from __future__ import annotations

import functools
import lzma
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from strokeseg.synth.anatomy import ASSETS, Template, rotation, smooth_field
from strokeseg.synth.lesions import ATLAS_R2, Lesions, VolumeDistribution, smooth_noise

CANDIDATES = 64
COUNT_P = (0.7, 0.2, 0.1)


@dataclass(frozen=True)
class LesionLibrary:
    """Packed real lesion masks: box ``i`` has ``shape[i]`` voxels (RAS order, 1 mm) whose
    first voxel lies at ``origin_mm[i]`` (MNI mm)."""

    ids: np.ndarray
    origin_mm: np.ndarray
    shape: np.ndarray
    volumes: np.ndarray  # mm3 (= voxels)
    start: np.ndarray  # bit offset of each box in ``bits``
    bits: np.ndarray  # unpacked lazily per mask

    def mask(self, i: int) -> np.ndarray:
        n = int(np.prod(self.shape[i]))
        box = np.unpackbits(self.bits[self.start[i] // 8 :], count=n)
        return box.reshape(tuple(self.shape[i])).astype(bool)


@functools.lru_cache(maxsize=1)
def load_library() -> LesionLibrary:
    """The vendored SOOP masks (about 0.5 s to decompress)."""
    with np.load(ASSETS / "soop_lesions.npz") as packed:
        shape = packed["shape"].astype(int)
        bits = np.frombuffer(lzma.decompress(packed["bits_lzma"].tobytes()), np.uint8)
        sizes = np.prod(shape, axis=1)
        padded = -(-sizes // 8) * 8  # each box was packed on its own, padded to whole bytes
        start = np.concatenate([[0], np.cumsum(padded)[:-1]])
        return LesionLibrary(
            packed["ids"],
            packed["origin_mm"].astype(float),
            shape,
            packed["volume"].astype(float),
            start,
            bits,
        )


def draw_real_lesions(
    rng: np.random.Generator,
    template: Template,
    volumes: VolumeDistribution = ATLAS_R2,
) -> Lesions:
    """One subject's lesions from the real-mask library (see the module docstring)."""
    library = load_library()
    count = int(rng.choice(len(COUNT_P), p=COUNT_P)) + 1
    shares = volumes.draw(rng) * rng.dirichlet(np.full(count, 1.0))
    prob = np.zeros(template.shape, np.float32)
    severity = np.zeros(template.shape, np.float32)
    lo, hi, sides, used = np.array(template.shape), np.zeros(3, int), [], []
    for target in shares:
        pool = rng.choice(len(library.ids), CANDIDATES, replace=False)
        pick = int(pool[np.argmin(np.abs(np.log(library.volumes[pool]) - np.log(target)))])
        scale = float(np.clip(target / library.volumes[pick], 0.8, 1.25)) ** (1.0 / 3.0)
        box, p = _place(rng, library, pick, scale, template, side=sides[0] if sides else None)
        if box is None:
            continue
        _paint(rng, prob, severity, box, p)
        lo, hi = np.minimum(lo, [s.start for s in box]), np.maximum(hi, [s.stop for s in box])
        sides.append(_side(template, box, p))
        used.append(int(library.ids[pick]))
    if not used:  # every mask fell outside the brain: an empty subject, redrawn by the caller
        return Lesions(prob, severity, (slice(0, 1),) * 3, "-", 0)
    bbox = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    side = sides[0] if len(set(sides)) == 1 else "B"
    return Lesions(prob, severity, bbox, side, len(used), tuple(used))


def _place(
    rng: np.random.Generator,
    library: LesionLibrary,
    i: int,
    scale: float,
    template: Template,
    side: str | None = None,
) -> tuple[tuple[slice, ...] | None, np.ndarray]:
    """Mask ``i`` on the template grid with a left-right mirror (p 0.5, or towards ``side``
    'L' or 'R': a subject's further lesions join the first one's hemisphere), ``scale`` about
    its centroid, a small rigid jitter and elastic change, inside the brain; (None, empty)
    when it lands outside the brain."""
    mask = library.mask(i)
    centroid = library.origin_mm[i] + np.argwhere(mask).mean(axis=0)  # MNI mm
    mirror = rng.random() < 0.5
    if side in ("L", "R") and abs(centroid[0]) > 5.0:
        mirror = (centroid[0] < 0) != (side == "L")
    flip = np.diag([-1.0 if mirror else 1.0, 1.0, 1.0])
    turn = rotation(np.deg2rad(rng.normal(0.0, 3.0, 3))) @ flip
    target = flip @ centroid + rng.normal(0.0, 2.0, 3)
    box, p = place_mask(
        mask,
        library.origin_mm[i],
        turn,
        target,
        scale,
        template.affine,
        template.shape,
        elastic=(rng, rng.uniform(0.5, 1.5)),
    )
    if box is None:
        return None, p
    p *= template.brain[box]
    return (box, p) if p.max() >= 0.5 else (None, np.zeros(0, np.float32))


def place_mask(
    mask: np.ndarray,
    origin_mm: np.ndarray,
    turn: np.ndarray,
    target: np.ndarray,
    scale: float,
    affine: np.ndarray,
    shape: tuple[int, ...],
    elastic: tuple[np.random.Generator, float] | None = None,
) -> tuple[tuple[slice, ...] | None, np.ndarray]:
    """Resample a 1 mm RAS mask box (first voxel at ``origin_mm``, world mm) onto the grid
    (``affine``, ``shape``) by world coordinates: its centroid goes to ``target`` (mm), turned
    by ``turn`` and scaled by ``scale`` about it, plus a smooth elastic displacement of
    (rng, at most mm). Returns (box on the grid, linear partial-volume probability there),
    or (None, empty) when the mask falls off the grid."""
    centroid = origin_mm + np.argwhere(mask).mean(axis=0)
    half = 0.5 * np.abs(turn) @ (np.asarray(mask.shape) * scale) + 4.0
    to_voxel = np.linalg.inv(affine)
    corners = [to_voxel[:3, :3] @ (target + sign * half) + to_voxel[:3, 3] for sign in (-1, 1)]
    lo = np.maximum(np.floor(np.minimum(*corners)), 0).astype(int)
    hi = np.minimum(np.ceil(np.maximum(*corners)) + 1, shape).astype(int)
    if np.any(hi <= lo):
        return None, np.zeros(0, np.float32)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    axes = [np.arange(s.start, s.stop, dtype=np.float32) for s in box]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"))
    world = np.tensordot(affine[:3, :3], grid, axes=1) + affine[:3, 3, None, None, None]
    # output point y shows the mask at centroid + turn^-1 (y - target) / scale
    source = np.tensordot(turn.T, world - target[:, None, None, None], axes=1) / scale
    source += (centroid - origin_mm)[:, None, None, None]
    if elastic is not None:
        rng, mm = elastic
        source += np.stack([smooth_field(rng, grid.shape[1:], 3) for _ in range(3)]) * mm
    p = ndi.map_coordinates(mask.astype(np.float32), source, order=1, mode="constant")
    return box, p.astype(np.float32)


def _paint(
    rng: np.random.Generator,
    prob: np.ndarray,
    severity: np.ndarray,
    box: tuple[slice, ...],
    p: np.ndarray,
) -> None:
    """Add one lesion's probability and chronic appearance (cavitated core, gliotic rim)."""
    depth = ndi.distance_transform_edt(p > 0.5)  # mm inside the lesion (1 mm grid)
    rim = min(rng.uniform(1.0, 3.0), 0.5 * float(depth.max()))
    core = np.clip(depth - rim, 0.0, 1.5) / 1.5  # a 1.5 mm ramp from rim to core
    cavity, gliosis = rng.uniform(0.75, 1.0), rng.uniform(0.2, 0.55)
    texture = np.clip(1.0 + 0.12 * smooth_noise(rng, p.shape, 2.0, channels=1)[0], 0.8, 1.2)
    s = p * (gliosis + (cavity - gliosis) * core) * texture
    np.maximum(prob[box], p, out=prob[box])
    np.maximum(severity[box], s.astype(np.float32), out=severity[box])


def _side(template: Template, box: tuple[slice, ...], p: np.ndarray) -> str:
    """'L', 'R' or 'B' (more than 10 % of the volume on each side of x = 0 mm)."""
    x_mm = template.affine[0, 0] * np.arange(box[0].start, box[0].stop) + template.affine[0, 3]
    per_x = p.sum(axis=(1, 2))
    left = float(per_x[x_mm < 0].sum()) / max(float(per_x.sum()), 1e-6)
    return "B" if 0.1 < left < 0.9 else ("L" if left >= 0.9 else "R")
