"""SynthATLAS: T1-weighted stroke subjects in ATLAS R2.0's space, grid and BIDS layout.

Per subject, everything is drawn from ``numpy.random.default_rng([seed, index, 0])`` (and a
site stream shared by 20 consecutive subjects, for scanner-like intensity differences), so a
subject is reproducible on its own. The healthy head is the template T1 with a per-subject
contrast (gamma), plus skull and scalp layers; lesions are pulled toward the CSF intensity
by their severity (subtle to cystic) with partial-volume borders; then a smooth random
deformation, a multiplicative bias field and Rician noise. Chronic lesions appear
T1-hypointense; that is what ATLAS's masks outline (Liew et al., Scientific Data 2022).
The mask is the 0.5 level of the warped lesion map inside the warped brain mask, without the
specks (components under ``MIN_COMPONENT`` voxels) that the brain mask's edge cuts off.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from strokeseg import __version__
from strokeseg.data.components import keep_large
from strokeseg.synth.anatomy import (
    ANATOMIES,
    Template,
    head_image,
    load_template,
    smooth_field,
    warp,
)
from strokeseg.synth.deform import ATROPHY_SHARE, subject_coords
from strokeseg.synth.lesions import ATLAS_R2, Lesions, VolumeDistribution, draw_lesions
from strokeseg.synth.native import GENERATED as NATIVE_GENERATED
from strokeseg.synth.native import write_native
from strokeseg.synth.output import (
    each_subject,
    prepare_output,
    save_json,
    save_nifti,
    save_tsv,
)
from strokeseg.synth.real_lesions import draw_real_lesions

SPACE = "MNI152NLin2009aSym"
SUBJECTS_PER_SITE = 20
MNI_CODE = 4  # NIfTI xform code for MNI152 space
T1_CSF, T1_WM = 0.28, 0.87
"""Template T1 (rescaled to [0, 1]) medians in ventricular CSF and in white matter."""
VOLUME_RANGE = (10, 280_000)
"""Lesion volume (mm3 = voxels) accepted per subject: the range of ATLAS R2.0's masks."""
MIN_COMPONENT = 10
"""Mask components (26-connected) under this many voxels are dropped: specks left where the
warped brain mask cuts a lesion's edge, smaller than ATLAS R2.0's smallest lesion volume."""
GENERATED = ("sub-r*", "dataset_description.json", "participants.tsv")
LESION_SOURCES = ("real", "ellipsoid", "none")
REACH_MM = 24
"""Bound on how far the subject's deformation moves a template voxel (synth/deform.py: 6 + 3
mm of displacement, 5 mm of ventricle pull or expansion, and the misregistration)."""


@dataclass(frozen=True)
class Options:
    """What a SynthATLAS cohort is made of: the lesion source (``real``: the SOOP masks with
    a chronic appearance; ``ellipsoid``: random ellipsoid unions; ``none``: stroke-free
    controls with empty masks), the anatomy (``mixed``:
    each subject draws one of ``ANATOMIES``; or a comma-separated list of them to draw from),
    the share of brain-extracted images, and the space written."""

    lesions: str = "real"
    anatomy: str = "mixed"
    skull_stripped: float = 0.25
    space: str = "template"  # or "native": ATLAS R3.0's layout in scanner poses


DEFAULT = Options()


def subject_id(index: int) -> str:
    """ATLAS R2.0 naming, ``sub-r<site>s<subject>``, with 20 subjects per synthetic site."""
    return f"sub-r{1 + index // SUBJECTS_PER_SITE:03d}s{1 + index % SUBJECTS_PER_SITE:03d}"


def subject_paths(out: Path, index: int) -> tuple[Path, Path]:
    """(T1w image, lesion mask) paths of one subject in the ATLAS R2.0 BIDS layout."""
    sid = subject_id(index)
    stem = out / sid / "ses-1" / "anat" / f"{sid}_ses-1_space-{SPACE}"
    return (
        stem.with_name(stem.name + "_T1w.nii.gz"),
        stem.with_name(stem.name + "_label-L_desc-T1lesion_mask.nii.gz"),
    )


def _box(mask_any: np.ndarray, margin: int) -> tuple[slice, slice, slice]:
    """Bounding box of a boolean volume, grown by ``margin`` voxels and clipped to the grid."""
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.nonzero(mask_any.any(axis=other))[0]
        box.append(slice(max(idx[0] - margin, 0), min(idx[-1] + 1 + margin, mask_any.shape[axis])))
    return tuple(box)


def _relative(inner: tuple[slice, ...], outer: tuple[slice, ...]) -> tuple[slice, ...]:
    """``inner`` box expressed in the coordinates of the ``outer`` box that contains it."""
    return tuple(
        slice(i.start - o.start, i.stop - o.start) for i, o in zip(inner, outer, strict=True)
    )


def _healthy_head(
    rng: np.random.Generator, template: Template, gamma: float, atrophy: float
) -> np.ndarray:
    """Template T1 with its contrast changed by ``gamma``, sulcal CSF widened by ``atrophy``
    (0-1: partial-volume CSF outside the ventricles pulled towards CSF signal), skull and
    scalp added."""
    csf = T1_CSF**gamma
    jitter = rng.uniform(0.85, 1.15, 3)
    values = (csf, csf, 0.06, 0.5 * jitter[0], 0.5 * jitter[0], 0.06, 0.06)
    values += (0.85 * jitter[1], 0.85 * jitter[1], 0.45 * jitter[2], 0.0)
    real_head = template.head is not None  # a real head keeps its own skull and scalp
    outside = template.head**gamma if real_head else head_image(rng, template, values)
    brain = template.t1**gamma
    if atrophy:
        sulcal = np.clip(2.0 * template.csf, 0.0, 1.0) * ~template.ventricles
        brain += atrophy * sulcal * (csf - brain)
    return np.where(template.brain, brain, outside).astype(np.float32)


def _draw(rng: np.random.Generator, template: Template, volumes, lesions: str):
    if lesions == "none":  # a stroke-free control
        empty = np.zeros(template.shape, np.float32)
        return Lesions(empty, empty, (slice(0, 0),) * 3, "-", 0)
    if lesions == "real":
        return draw_real_lesions(rng, template, volumes)
    return draw_lesions(rng, template, volumes)


def _place_lesions(
    rng: np.random.Generator,
    template: Template,
    volumes: VolumeDistribution,
    kind: str,
    head: tuple[slice, ...],
    atrophy: bool,
) -> tuple[Lesions, np.ndarray, np.ndarray]:
    """(lesions, the subject's deformation of the ``head`` box, the uint8 lesion mask on the
    template grid): lesion sets outside ATLAS's volume range after thresholding are redrawn."""
    brain = template.brain.astype(np.float32)
    while True:
        lesions = _draw(rng, template, volumes, kind)
        coords = subject_coords(rng, template, head, lesions, atrophy)
        region = tuple(  # where the lesion can land: its box grown by the largest shift
            slice(max(les.start - REACH_MM, h.start), min(les.stop + REACH_MM, h.stop))
            for les, h in zip(lesions.bbox, head, strict=True)
        )
        local = coords[(slice(None),) + _relative(region, head)]
        mask = np.zeros(template.shape, np.uint8)
        mask[region] = keep_large(
            (warp(lesions.prob, local) > 0.5) & (warp(brain, local) > 0.5), MIN_COMPONENT
        )
        if kind == "none" or (lesions.count and VOLUME_RANGE[0] <= mask.sum() <= VOLUME_RANGE[1]):
            return lesions, coords, mask


def make_subject(
    seed: int,
    index: int,
    volumes: VolumeDistribution = ATLAS_R2,
    options: Options = DEFAULT,
) -> tuple[nib.Nifti1Image, nib.Nifti1Image, dict, np.ndarray]:
    """One SynthATLAS subject: (T1w int16 image, uint8 lesion mask, participants.tsv row,
    uint8 brain mask on the template grid)."""
    rng = np.random.default_rng([seed, index, 0])
    site = np.random.default_rng([seed, index // SUBJECTS_PER_SITE, 1])
    scale, noise, gamma, bias = (
        site.uniform(250, 450),
        site.uniform(0.01, 0.03),
        site.uniform(0.85, 1.2),
        site.uniform(0.1, 0.35),
    )
    gamma *= rng.uniform(0.95, 1.05)
    choices = ANATOMIES if options.anatomy == "mixed" else options.anatomy.split(",")
    name = choices[int(rng.integers(len(choices)))]
    template = load_template(name)
    atrophy = bool(rng.random() < ATROPHY_SHARE)
    stripped = bool(rng.random() < options.skull_stripped)
    image = _healthy_head(rng, template, gamma, rng.uniform(0.3, 0.8) if atrophy else 0.0)

    head = _box(image > 0, margin=4)
    brain = template.brain.astype(np.float32)
    lesions, coords, mask = _place_lesions(rng, template, volumes, options.lesions, head, atrophy)

    severity = np.minimum(lesions.severity[lesions.bbox], 1.0)
    box = image[lesions.bbox]
    box += severity * (T1_CSF**gamma - box)

    shape = tuple(s.stop - s.start for s in head)
    t1 = np.zeros(template.shape, np.float32)
    t1[head] = warp(image, coords) * np.exp(bias * smooth_field(rng, shape, 3))
    brain_mask = np.zeros(template.shape, np.uint8)
    brain_mask[head] = warp(brain, coords) > 0.5
    t1 *= scale / T1_WM**gamma  # white matter near ``scale``
    sigma = noise * scale
    real = t1 + sigma * rng.standard_normal(t1.shape, dtype=np.float32)
    imag = sigma * rng.standard_normal(t1.shape, dtype=np.float32)
    t1 = np.sqrt(real * real + imag * imag)  # Rician magnitude noise
    if stripped:  # brain-extracted, as ATLAS R3.0's desc-brain images: zero outside
        t1 *= brain_mask  # (zero outside the head box too)
    data = np.clip(np.round(t1), 0, np.iinfo(np.int16).max).astype(np.int16)

    row = {
        "participant_id": subject_id(index),
        "site": f"r{1 + index // SUBJECTS_PER_SITE:03d}",
        "lesion_volume_mm3": int(mask.sum()) * float(abs(np.linalg.det(template.affine[:3, :3]))),
        "hemisphere": lesions.hemisphere,
        "n_lesions": lesions.count,
        "lesion_source": "+".join(f"soop-{i}" for i in lesions.sources) or options.lesions,
        "anatomy": name,
        "atrophy": int(atrophy),
        "skull_stripped": int(stripped),
    }
    return _nifti(data, template.affine), _nifti(mask, template.affine), row, brain_mask


def _nifti(data: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    """A NIfTI in MNI space: qform and sform both set (code 4), mm units."""
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=MNI_CODE)
    image.set_sform(affine, code=MNI_CODE)
    image.header.set_xyzt_units("mm", "sec")
    image.header.set_data_dtype(data.dtype)
    return image


def _write_subject(
    out: Path, seed: int, volumes: VolumeDistribution, options: Options, index: int
) -> dict:
    image, mask, row, brain = make_subject(seed, index, volumes, options)
    if options.space == "native":
        site = row["site"].upper()
        rng = np.random.default_rng([seed, index, 2])
        return row | write_native(out, row["participant_id"], site, (image, mask, brain), rng)
    image_path, mask_path = subject_paths(out, index)
    save_nifti(image, image_path)
    save_nifti(mask, mask_path)
    return row


def generate(
    out: Path,
    subjects: int,
    seed: int,
    overwrite: bool,
    progress: bool = True,
    volumes: VolumeDistribution = ATLAS_R2,
    options: Options = DEFAULT,
) -> None:
    """Write ``subjects`` SynthATLAS subjects to ``out`` in the ATLAS R2.0 BIDS layout, or
    with ``options.space == "native"`` in scanner poses in ATLAS R3.0's layout
    (``synth/native.py``)."""
    prepare_output(out, overwrite, GENERATED + NATIVE_GENERATED)
    write = functools.partial(_write_subject, out, seed, volumes, options)
    rows = each_subject(write, subjects, "SynthATLAS", progress)
    save_tsv(rows, out / "participants.tsv")
    save_json(
        {
            "Name": "SynthATLAS (synthetic T1w stroke lesions, ATLAS R2.0 layout)",
            "BIDSVersion": "1.8.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "strokeseg synth atlas", "Version": __version__}],
            "Seed": seed,
            "Template": "ICBM152 2009a nonlinear symmetric (nilearn); grid and space",
            "Anatomy": options.anatomy,
            "Lesions": options.lesions,
            "SkullStrippedShare": options.skull_stripped,
        },
        out / "dataset_description.json",
    )
