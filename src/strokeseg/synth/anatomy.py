"""Shared anatomy for the synthetic cohorts: two MNI152 templates and a head around each.

``sym``: the ICBM152 2009a nonlinear symmetric T1 template and its grey/white-matter
probability maps ship inside nilearn's wheel
(``nilearn/datasets/data/mni_icbm152_*_tal_nlin_sym_09a_converted.nii.gz``), already on
ATLAS R2.0's grid (197x233x189, 1 mm, MNI152NLin2009aSym; Fonov et al., NeuroImage 2011).
``asym``: an asymmetric MNI152 2009 T1 template (vendored from NiiVue, ``assets/``), placed
on the same grid, its intensities matched to ``sym``'s inside the brain and its tissue maps
taken from those intensities. ``chris``: one real person's T1w with skull (NiiVue's
``chris_t1``), affinely registered to the 2009a template (``scripts/vendor_shared_data.py``),
its brain taken as the template's brain mask, intensities and tissue maps as for ``asym``;
it keeps its own head. The templates are skull-stripped; a head is added around their brain
as layers at a given distance outside the brain mask (extra-axial CSF, inner table, diploe,
outer table, scalp fat, skin), so both an MRI and a CT can be rendered from one anatomy.
CSF inside the brain is what is left of the brain mask after grey and white matter.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from strokeseg.data.template import BRAIN_THRESHOLD, template_file

ASSETS = Path(__file__).resolve().parent / "assets"
ANATOMIES = ("sym", "asym", "chris")
ASSET_FILES = {"asym": "mni152_2009_asym.nii.gz", "chris": "chris_t1_mni.nii.gz"}

SHELL_MM = 25.0
"""Head layers (CSF gap, skull, scalp) lie within this distance of the brain."""


@dataclass(frozen=True)
class Template:
    """The template anatomy on its 1 mm grid; all maps float32 in [0, 1] except where noted."""

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain: np.ndarray  # bool
    outside_mm: np.ndarray  # distance (mm) from the brain surface, 0 inside the brain
    shell: np.ndarray  # flat indices of the voxels that can hold head layers
    affine: np.ndarray  # voxel -> MNI (RAS) mm
    ventricles: np.ndarray  # bool: CSF deeper than VENTRICLE_DEPTH_MM inside the brain
    name: str = "sym"
    head: np.ndarray | None = None  # a real head's T1 outside the brain (else layers are drawn)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.t1.shape


VENTRICLE_DEPTH_MM = 12.0
"""CSF at least this deep inside the brain counts as ventricle (sulcal CSF is shallower)."""


@functools.lru_cache(maxsize=2)
def load_template(name: str = "sym") -> Template:
    """Load a packaged template once per process (no network access).

    As nilearn's ``load_mni152_*`` loaders do, each map is rescaled by its maximum and the
    brain mask is the T1 above 0.2 (holes filled).
    """
    if name not in ANATOMIES:
        raise ValueError(f"anatomy {name!r}: expected one of {ANATOMIES}")
    t1_img = nib.load(template_file("t1"))
    t1, gm, wm = (
        _unit(nib.load(template_file(part)).get_fdata(dtype=np.float32))
        for part in ("t1", "gm", "wm")
    )
    head = None
    if name != "sym":
        raw = np.asarray(nib.load(ASSETS / ASSET_FILES[name]).dataobj, np.float32) / 255.0
        inside = raw > 0.05 if name == "asym" else t1 > BRAIN_THRESHOLD
        t1, gm, wm = _matched_maps(raw, inside, t1, gm, wm)
        if name == "chris":
            head = np.where(inside, 0.0, t1)
            t1 = np.where(inside, t1, 0.0)
    brain = ndi.binary_fill_holes(t1 > BRAIN_THRESHOLD)  # ventricles darker than 0.2 stay in
    gm *= brain
    wm *= brain
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0) * brain
    outside_mm = _outside_distance(brain)
    depth = ndi.distance_transform_edt(brain[::2, ::2, ::2], sampling=2.0)
    deep = ndi.zoom(depth, np.divide(brain.shape, depth.shape), order=0) > VENTRICLE_DEPTH_MM
    return Template(
        t1=t1,
        gm=gm,
        wm=wm,
        csf=csf.astype(np.float32),
        brain=brain,
        outside_mm=outside_mm,
        shell=np.flatnonzero((outside_mm > 0) & (outside_mm < SHELL_MM)),
        affine=t1_img.affine.copy(),
        ventricles=deep & (csf > 0.5),
        name=name,
        head=head,
    )


def _matched_maps(
    raw: np.ndarray, inside: np.ndarray, sym_t1: np.ndarray, sym_gm: np.ndarray, sym_wm: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Another T1 on the template grid as (T1, grey matter, white matter): its intensities
    mapped onto the symmetric template's by quantiles inside the brain (``inside``; values
    outside follow the same map, clamped at its ends), then tissue shares read off the
    intensity between ``sym``'s CSF, grey and white matter medians (a linear partial-volume
    model)."""
    ref = sym_t1 > BRAIN_THRESHOLD
    q = np.linspace(0.0, 1.0, 201)
    matched = np.interp(raw, np.quantile(raw[inside], q), np.quantile(sym_t1[ref], q))
    matched = np.where(raw > 0, matched, 0.0).astype(np.float32)
    c = float(np.median(sym_t1[ref & (sym_gm + sym_wm < 0.2)]))
    g = float(np.median(sym_t1[sym_gm > 0.7]))
    w = float(np.median(sym_t1[sym_wm > 0.9]))
    wm = np.clip((matched - g) / (w - g), 0.0, 1.0) * inside
    gm = np.where(matched < g, np.clip((matched - c) / (g - c), 0.0, 1.0), 1.0 - wm) * inside
    return matched, gm.astype(np.float32), wm.astype(np.float32)


def _unit(volume: np.ndarray) -> np.ndarray:
    volume /= volume.max()
    return volume


def _outside_distance(brain: np.ndarray) -> np.ndarray:
    """Distance outside the brain, computed on every other voxel (eight times cheaper).

    The template's dimensions are odd, so the 2 mm grid's corners coincide with the 1 mm
    grid's and linear upsampling is exact at the coarse voxels; millimetre accuracy is plenty
    for head layers several millimetres thick.
    """
    coarse = brain[::2, ::2, ::2]
    dist = ndi.distance_transform_edt(~coarse, sampling=2.0).astype(np.float32)
    zoom = [n / c for n, c in zip(brain.shape, coarse.shape, strict=True)]
    full = ndi.zoom(dist, zoom, order=1, output=np.float32)  # maps corners to corners
    full -= 1.0  # voxel centres to surface
    full[brain] = 0.0
    np.maximum(full, 0.5 * ~brain, out=full)
    return full


def smooth_field(rng: np.random.Generator, shape: tuple[int, ...], n_basis: int) -> np.ndarray:
    """A random smooth field on a grid, scaled so that max |value| = 1 over the grid.

    A tensor product of the lowest ``n_basis`` cosines per axis with random weights (higher
    frequencies damped): a low-pass random field that costs a few small matrix products
    instead of a large filter. The field is divided by its realised maximum magnitude, so an
    amplitude given to it is the amplitude the grid gets.
    """
    weights = rng.standard_normal((n_basis,) * len(shape)).astype(np.float32)
    field = weights / (1.0 + np.add.reduce(np.indices(weights.shape), axis=0))
    for n in shape:  # contract the leading axis; the new axis goes last
        i = (np.arange(n, dtype=np.float32) + 0.5) / n
        basis = np.cos(np.pi * np.arange(n_basis, dtype=np.float32)[None] * i[:, None])
        field = np.tensordot(field, basis, axes=(0, 1))
    field /= max(float(field.max()), -float(field.min()), 1e-12)
    return field


def displacement(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    max_mm: float,
    n_basis: int = 4,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """A smooth random displacement field (3, *shape); each component's largest magnitude
    over the grid is ``max_mm``. ``n_basis`` cosines per axis set the smallest wavelength
    (about 2 x extent / n_basis). With ``out``, the field is added to it in place."""
    if out is None:
        out = np.zeros((3, *shape), np.float32)
    for component in out:
        field = smooth_field(rng, shape, n_basis)
        field *= max_mm
        component += field
    return out


def rotation(angles: np.ndarray) -> np.ndarray:
    """Rotation matrix from three angles (radians) about x, then y, then z."""
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def warp(volume: np.ndarray, coords: np.ndarray, cval: float = 0.0) -> np.ndarray:
    """Sample ``volume`` at voxel coordinates ``coords`` (3, ...) with linear interpolation."""
    out = ndi.map_coordinates(volume, coords, order=1, mode="constant", cval=cval, prefilter=False)
    return out.astype(np.float32, copy=False)


def head_knots(rng: np.random.Generator) -> np.ndarray:
    """Distances (mm) from the brain surface where the head's layers change, drawn per subject.

    Order: extra-axial CSF | inner table | diploe | outer table | scalp fat | skin | air.
    """
    gap = rng.uniform(1.0, 3.0)
    skull = rng.uniform(5.0, 8.0)
    scalp = rng.uniform(4.0, 7.0)
    return np.array(
        [
            0.0,
            gap,
            gap + 0.8,
            gap + 0.4 * skull,
            gap + 0.6 * skull,
            gap + skull - 0.8,
            gap + skull,
            gap + skull + 0.8,
            gap + skull + 0.7 * scalp,
            gap + skull + scalp,
            gap + skull + scalp + 1.0,
        ],
        dtype=np.float32,
    )


def head_image(
    rng: np.random.Generator, template: Template, values: tuple[float, ...]
) -> np.ndarray:
    """Intensity of the head layers outside the brain (zero elsewhere), drawn per subject.

    A piecewise-linear profile of the distance to the brain: ``values`` are the intensities
    at the knots of :func:`head_knots` (CSF, CSF, table, diploe, diploe, table, table, fat,
    fat, skin, air), and the last value also fills the background; a smooth thickness field
    (within +-30 %) stretches the layers locally so the skull is not a constant offset of the
    brain.
    """
    knots = head_knots(rng)
    thickness = 1.0 + 0.3 * smooth_field(rng, template.shape, 3)
    out = np.full(template.shape, values[-1], np.float32)
    distance = template.outside_mm.ravel()[template.shell] / thickness.ravel()[template.shell]
    out.ravel()[template.shell] = np.interp(distance, knots, values)
    return out


def hemisphere_mask(template: Template, side: str, margin_mm: float = 1.0) -> np.ndarray:
    """Voxels of the left (x < 0, RAS) or right hemisphere, ``margin_mm`` away from the midline."""
    x_mm = template.affine[0, 0] * np.arange(template.shape[0]) + template.affine[0, 3]
    keep = x_mm <= -margin_mm if side == "L" else x_mm >= margin_mm
    return np.broadcast_to(keep[:, None, None], template.shape)
