"""SynthCT: non-contrast head CT with acute infarcts, at clinical CT geometry, as nnU-Net raw data.

The anatomy of :mod:`strokeseg.synth.anatomy` is mapped to Hounsfield units (CSF, grey and
white matter, skull tables and diploe, scalp fat and skin, air), tilted in the scanner
(head flexion, yaw, roll) and sampled on a 512x512 grid at about 0.43 mm with 24-32 thick
axial slices: each slice averages several planes across its 4-5 mm thickness, so the
through-plane partial-volume effect is real; half the cases have a gantry tilt of 5-25
degrees (the slices stay parallel to the axial plane but each is shifted along y: a sheared
affine, kept in the sform). The anatomy is the symmetric or the asymmetric template. Lesions
are the real SOOP masks (``real_lesions.py``) with an acute appearance: 2-8 HU of oedema and
the grey-white contrast lost (grey matter darkened 50-100 % of the way to white matter),
blurred by partial volume; the label is the lesion probability, averaged the
same way, thresholded at 0.5. Slice geometry follows the paper's CT cohort (512x512x24-32,
0.43 x 0.43 x 4.1-4.8 mm).
"""

from __future__ import annotations

import functools
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi
from scipy import sparse

from strokeseg import __version__
from strokeseg.synth.anatomy import Template, head_image, load_template, smooth_field, warp
from strokeseg.synth.lesions import VolumeDistribution
from strokeseg.synth.output import (
    each_subject,
    prepare_output,
    save_json,
    save_nifti,
    save_tsv,
)
from strokeseg.synth.real_lesions import draw_real_lesions

# SynthCT's total infarct volume: log-uniform over 0.3-200 mL (10**2.5-10**5.3 mm3). Not fitted
# to published figures (the paper's CT cohort gives none): every size class from lacunar to
# large territorial infarct gets the same weight on a log scale, and lesions below 0.3 mL
# would vanish on 4-5 mm slices.
CT_VOLUMES = VolumeDistribution(median=0.0, sigma=0.0, low=10**2.5, high=10**5.3)
MATRIX = 512
CT_ANATOMIES = ("sym", "asym")
"""The templates' tissue maps are rendered in HU (a real head's MRI intensities are not)."""
WHITE_MATTER_HU = 25.0
PLANES_PER_SLICE = 4
AIR_HU = -1000.0
SCANNER_CODE = 1  # NIfTI xform code for scanner coordinates
GENERATED = ("imagesTr", "labelsTr", "dataset.json", "cases.tsv")


def case_id(index: int) -> str:
    return f"ct_{index:03d}"


def _rotation(rng: np.random.Generator) -> np.ndarray:
    """Head pose in the scanner: flexion (about x), roll (about y), yaw (about z), degrees."""
    ax, ay, az = np.deg2rad([rng.uniform(-5, 12), rng.uniform(-4, 4), rng.uniform(-5, 5)])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _hounsfield(rng: np.random.Generator, template: Template) -> np.ndarray:
    """Healthy head in HU on the template grid (air outside)."""
    brain = (
        template.gm * rng.normal(38.0, 2.0)
        + template.wm * rng.normal(25.0, 2.0)
        + template.csf * rng.uniform(3.0, 8.0)
    )
    table, diploe = rng.uniform(1100, 1500), rng.uniform(450, 750)
    fat, skin = rng.uniform(10, 35), rng.uniform(40, 60)  # scalp: galea, muscle, some fat
    csf = rng.uniform(3.0, 8.0)
    values = (csf, csf, table, diploe, diploe, table, table, fat, fat, skin, AIR_HU)
    return np.where(template.brain, brain, head_image(rng, template, values)).astype(np.float32)


def _geometry(rng: np.random.Generator, template: Template) -> tuple[np.ndarray, np.ndarray, int]:
    """CT affine (voxel -> scanner RAS mm, LPS voxel order), CT voxel -> template voxel, slices."""
    pixel, thickness = rng.uniform(0.42, 0.47), round(rng.uniform(4.0, 5.0), 2)
    slices = int(rng.integers(24, 33))
    rigid = np.eye(4)  # MNI mm -> scanner mm
    rigid[:3, :3] = _rotation(rng)
    rigid[:3, 3] = [rng.uniform(-10, 10), rng.uniform(-10, 10) - 20.0, rng.uniform(-30, 30)]
    to_scanner = rigid @ template.affine  # template voxel -> scanner mm

    head = np.argwhere(template.outside_mm[::4, ::4, ::4] < 12.0) * 4  # brain and skull
    points = to_scanner[:3, :3] @ head.T + to_scanner[:3, 3:]
    centre = (points.min(axis=1) + points.max(axis=1)) / 2 + rng.uniform(-5, 5, 3)
    top = points[2].max() + 6.0 - rng.uniform(0.0, 8.0)  # top slice near the vertex
    corners = np.array(np.meshgrid([0, template.shape[0] - 1], [0, template.shape[1] - 1], [0]))
    floor = (to_scanner[2, :3] @ corners.reshape(3, -1) + to_scanner[2, 3]).max()
    bottom = max(top - slices * thickness, floor)  # stay inside the template's slab

    affine = np.diag([-pixel, -pixel, thickness, 1.0])
    tilt = rng.uniform(5.0, 25.0) if rng.random() < 0.5 else 0.0  # gantry tilt (degrees)
    affine[1, 2] = thickness * np.tan(np.deg2rad(tilt))  # each slice moves along y: a shear
    half = (MATRIX - 1) / 2 * pixel
    drift = affine[1, 2] * (slices - 1) / 2  # keep the tilted slab centred on the head
    affine[:3, 3] = [centre[0] + half, centre[1] + half - drift, bottom + thickness / 2]
    ct_to_template = np.linalg.inv(to_scanner) @ affine
    return affine, ct_to_template, slices


def _sample_points(
    rng: np.random.Generator, ct_to_template: np.ndarray, slices: int, pixel: float
) -> np.ndarray:
    """Template voxel coordinates of about 1 mm in-plane samples and planes across each slice.

    Shape (3, m, m, slices * PLANES_PER_SLICE); a smooth random displacement (up to 3 mm per
    axis), drawn on this grid, deforms the anatomy.
    """
    m = int(np.ceil(MATRIX * pixel))
    u = (np.arange(m) + 0.5) * MATRIX / m - 0.5  # CT voxel index of each coarse sample
    w = (np.arange(slices * PLANES_PER_SLICE) + 0.5) / PLANES_PER_SLICE - 0.5
    shape = (m, m, w.size)
    coords = 3.0 * rng.uniform(0.5, 1.0) * np.stack([smooth_field(rng, shape, 4) for _ in "xyz"])
    for axis in range(3):
        row = ct_to_template[axis]
        coords[axis] += (row[0] * u)[:, None, None] + (row[1] * u)[None, :, None]
        coords[axis] += (row[2] * w + row[3])[None, None, :]
    return coords


def _to_ct_grid(samples: np.ndarray, slices: int) -> np.ndarray:
    """Average the planes of each slice (partial volume), then resample in-plane to 512x512.

    Linear interpolation along each in-plane axis as a sparse matrix product (two non-zeros
    per row), several times faster than a general zoom.
    """
    m = samples.shape[0]
    thick = samples.reshape(m, m, slices, PLANES_PER_SLICE).mean(axis=-1, dtype=np.float32)
    weights = _linear_weights(m)
    rows = (weights @ thick.reshape(m, -1)).reshape(MATRIX, m, slices)
    cols = weights @ rows.transpose(1, 0, 2).reshape(m, -1)
    return np.ascontiguousarray(cols.reshape(MATRIX, MATRIX, slices).transpose(1, 0, 2))


def _linear_weights(m: int) -> sparse.csr_matrix:
    """(512, m) linear interpolation from m samples to 512 pixels spanning the same extent."""
    x = np.clip((np.arange(MATRIX) + 0.5) * m / MATRIX - 0.5, 0, m - 1)
    lo = np.floor(x).astype(int)
    hi = np.minimum(lo + 1, m - 1)
    frac = (x - lo).astype(np.float32)
    rows = np.tile(np.arange(MATRIX), 2)
    return sparse.csr_matrix(
        (np.concatenate([1 - frac, frac]), (rows, np.concatenate([lo, hi]))),
        shape=(MATRIX, m),
    )


def _sample_box(volume: np.ndarray, box: tuple[slice, ...], coords: np.ndarray) -> np.ndarray:
    """Sample ``volume`` (zero outside ``box``) at ``coords``, touching only points in the box."""
    out = np.zeros(coords.shape[1:], np.float32)
    lo = np.array([s.start for s in box], np.float32)[:, None]
    hi = np.array([s.stop - 1 for s in box], np.float32)[:, None]
    flat = coords.reshape(3, -1)
    inside = np.flatnonzero(np.all((flat >= lo) & (flat <= hi), axis=0))
    out.ravel()[inside] = warp(volume[box], flat[:, inside] - lo)
    return out


def acute_change(hu: np.ndarray, p: np.ndarray, share: float, drop: float) -> np.ndarray:
    """HU lost by an acute infarct of partial volume ``p``: ``drop`` HU of oedema, and grey
    matter losing ``share`` of its excess over white matter (grey-white differentiation
    lost: the cortex becomes as dark as the white matter)."""
    excess = np.clip(hu - WHITE_MATTER_HU, 0.0, None)
    return (p * (drop + share * excess)).astype(np.float32)


def make_subject(seed: int, index: int) -> tuple[nib.Nifti1Image, nib.Nifti1Image, dict]:
    """One SynthCT case: (int16 HU image, uint8 label, row of cases.tsv)."""
    rng = np.random.default_rng([seed, index, 2])
    template = load_template(CT_ANATOMIES[int(rng.integers(len(CT_ANATOMIES)))])
    hu = _hounsfield(rng, template)
    affine, ct_to_template, slices = _geometry(rng, template)
    pixel, thickness = -affine[0, 0], affine[2, 2]
    coords = _sample_points(rng, ct_to_template, slices, pixel)

    row = np.linalg.inv(ct_to_template)[2]  # template voxel -> CT slice index
    i, j, k = (np.arange(n, dtype=np.float32) for n in template.shape)
    slice_index = (row[0] * i)[:, None, None] + (row[1] * j)[None, :, None] + (row[2] * k + row[3])
    interior = (slice_index > 1.0) & (slice_index < slices - 2.0)
    while True:  # redraw lesions that vanish on the thick slices
        lesions = draw_real_lesions(rng, template, volumes=CT_VOLUMES)
        if not lesions.count or not interior[lesions.bbox].any():
            continue
        label = _to_ct_grid(_sample_box(lesions.prob, lesions.bbox, coords), slices) > 0.5
        if label.any():
            break

    share, drop = rng.uniform(0.5, 1.0), rng.uniform(2.0, 8.0)
    hu[lesions.bbox] -= acute_change(hu[lesions.bbox], lesions.prob[lesions.bbox], share, drop)
    image = _to_ct_grid(warp(hu, coords, cval=AIR_HU), slices)
    noise = ndi.gaussian_filter(rng.standard_normal(image.shape, dtype=np.float32), (0.8, 0.8, 0))
    image += noise * (rng.uniform(3.0, 5.0) / noise.std())  # correlated, CT-like grain
    data = np.clip(np.round(image), -1024, 3071).astype(np.int16)

    row = {
        "case": case_id(index),
        "slices": slices,
        "thickness_mm": float(thickness),
        "pixel_mm": round(float(pixel), 4),
        "lesion_volume_mm3": round(float(label.sum() * pixel * pixel * thickness), 1),
        "hemisphere": lesions.hemisphere,
        "n_lesions": lesions.count,
        "lesion_source": "+".join(f"soop-{i}" for i in lesions.sources),
        "anatomy": template.name,
        "gantry_tilt_deg": round(float(np.degrees(np.arctan2(affine[1, 2], thickness))), 1),
    }
    return _nifti(data, affine), _nifti(label.astype(np.uint8), affine), row


def _nifti(data: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    """A NIfTI in scanner space (qform = sform, code 1), mm units."""
    image = nib.Nifti1Image(data, affine)
    sheared = not np.allclose(affine[:3, :3], np.diag(np.diag(affine[:3, :3])))
    image.set_qform(affine, code=0 if sheared else SCANNER_CODE)  # a qform holds no shear
    image.set_sform(affine, code=SCANNER_CODE)
    image.header.set_xyzt_units("mm", "sec")
    return image


def _write_case(out: Path, seed: int, index: int) -> dict:
    image, label, row = make_subject(seed, index)
    save_nifti(image, out / "imagesTr" / f"{case_id(index)}_0000.nii.gz")
    save_nifti(label, out / "labelsTr" / f"{case_id(index)}.nii.gz")
    return row


def generate(out: Path, subjects: int, seed: int, overwrite: bool, progress: bool = True) -> None:
    """Write ``subjects`` SynthCT cases to ``out`` as an nnU-Net raw dataset."""
    prepare_output(out, overwrite, GENERATED)
    rows = each_subject(functools.partial(_write_case, out, seed), subjects, "SynthCT", progress)
    save_tsv(rows, out / "cases.tsv")
    save_json(
        {
            "name": "SynthCT",
            "description": "Synthetic non-contrast head CT with acute infarcts (strokeseg "
            f"{__version__}, seed {seed}); not real pathology.",
            "channel_names": {"0": "CT"},
            "labels": {"background": 0, "lesion": 1},
            "numTraining": subjects,
            "file_ending": ".nii.gz",
        },
        out / "dataset.json",
    )
