"""Affine registration of a scan to the template, and resampling between the two grids.

The template is the ICBM152 2009a nonlinear symmetric T1 (MNI152NLin2009aSym, 197x233x189 at
1 mm, skull-stripped; :mod:`strokeseg.data.template`), the grid of ATLAS R2.0 and SynthATLAS
that template-space checkpoints are trained on. A scan in its own (native) space is brought
there by a 12-parameter affine map, segmented, and the probability is resampled back.

SimpleITK does the registration: it is already a dependency (the ``dicom`` extra), well kept
(ITK's registration framework), and has what this needs in a few calls: initialisation by
image moments, Mattes mutual information (any contrast, any intensity scale), a rigid then an
affine stage over a multi-resolution pyramid, and a fixed-image mask. ANTsPy does the same
with a far heavier install.

The method: the fixed image is the template, sampled only inside its brain mask dilated by
:data:`MASK_MM`, so the brain's edge counts while a scan's skull, scalp and neck (absent from
the skull-stripped template) do not; brain-extracted scans and scans with a head register
the same way. The centres of mass start the rigid stage (Euler angles and shift), whose result
starts the affine stage; each stage runs at 4, 2 and 1 voxel(s) of 2 mm (the template and the
scan are first resampled to 2 mm: an affine map needs no finer detail). Sampling is regular
over a fixed share of the mask's voxels with a fixed seed, and ITK runs on one thread, so a
scan registers to the same matrix every time (ITK's multi-threaded metric would not).
The template's side (its working copy and masks) is made once per process and shared by a
folder's scans.

The quality figure is the Pearson correlation of the scan, resampled to the template grid,
with the template T1 inside the template brain: about 0.8-0.95 for a T1 scan in register,
near 0 for noise, for a scan too far off to recover, or for a volume without T1 contrast. A
registration is ``ok`` when it is at least :data:`MIN_CORRELATION`.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from scipy import ndimage

from strokeseg.data.io import voxel_spacing
from strokeseg.data.template import BRAIN_THRESHOLD, template_file
from strokeseg.extras import require

MASK_MM = 8.0
"""The fixed-image mask: the template brain dilated by this many mm."""
WORK_MM = 2.0
"""Both images are resampled to this voxel size before the registration."""
SHRINK = (4, 2, 1)
SMOOTH_VOXELS = (2.0, 1.0, 0.0)
BINS = 32
SAMPLING = 0.25
SEED = 20260101
ITERATIONS = 100
QUALITY_SIGMA_MM = 2.0
"""Both images are smoothed by this Gaussian sigma before the quality figure: an affine map
cannot match one brain's gyri to the template's, only its lobes, ventricles and outline."""
MIN_CORRELATION = 0.5
"""Registrations whose quality (correlation with the template T1 in its brain) is lower fail."""
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class Registration:
    """An affine registration of a scan to the template.

    ``matrix`` maps template world coordinates (RAS mm) to the scan's world coordinates (RAS
    mm): the template voxel ``i`` shows the scan at world ``matrix @ template_affine @ i``.
    ``quality`` is the correlation with the template T1 inside its brain (module docstring);
    ``reason`` says in one line why a registration is not ``ok`` ("" when it is).
    """

    matrix: np.ndarray
    quality: float
    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class TemplateGrid:
    """The template T1 (rescaled to [0, 1]), its brain mask and its grid (RAS affine)."""

    t1: np.ndarray
    brain: np.ndarray
    affine: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.t1.shape


@functools.lru_cache(maxsize=1)
def template_grid() -> TemplateGrid:
    """The template, read once per process (nilearn's brain rule: T1 / max above 0.2)."""
    image = nib.load(template_file("t1"))
    t1 = image.get_fdata(dtype=np.float32)
    t1 /= t1.max()
    return TemplateGrid(t1, t1 > BRAIN_THRESHOLD, np.asarray(image.affine, dtype=float))


def _sitk():
    sitk = require("SimpleITK", "registering a scan to the template")
    sitk.ProcessObject_SetGlobalWarningDisplay(False)
    return sitk


@contextmanager
def _one_thread():
    """ITK on one thread: its multi-threaded metric sums in a varying order, so the same scan
    would register to matrices that differ in the sixth digit."""
    sitk = _sitk()
    threads = sitk.ProcessObject_GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(1)
    try:
        yield
    finally:
        sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(threads)


def _sitk_image(array: np.ndarray, affine: np.ndarray):
    """``array`` (X, Y, Z) with its NIfTI affine as a SimpleITK image (LPS physical space)."""
    sitk = _sitk()
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array, np.float32).T))
    lps = _RAS_TO_LPS @ np.asarray(affine, dtype=float)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((lps[:3, :3] / spacing).ravel().tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    return image


def _on_working_grid(image, interpolator):
    """``image`` on a :data:`WORK_MM` grid with its axes, covering it (SimpleITK)."""
    sitk = _sitk()
    extent = np.asarray(image.GetSize()) * np.asarray(image.GetSpacing())
    size = [max(1, int(np.ceil(e / WORK_MM))) for e in extent]
    return sitk.Resample(
        image, size, sitk.Transform(), interpolator, image.GetOrigin(), [WORK_MM] * 3,
        image.GetDirection(), 0.0, image.GetPixelID(),
    )  # fmt: skip


def _working_copy(array: np.ndarray, affine: np.ndarray):
    """An image on the working grid, smoothed first to about its voxel size."""
    sitk = _sitk()
    image = _sitk_image(array, affine)
    variance = [(max(WORK_MM - s, 0.0) / 2) ** 2 for s in image.GetSpacing()]
    smooth = sitk.DiscreteGaussian(image, variance, 32, 0.01, True)
    return _on_working_grid(smooth, sitk.sitkLinear)


def dilate(mask: np.ndarray, spacing, mm: float) -> np.ndarray:
    """``mask`` dilated by ``mm``: the voxels within ``mm`` (Euclidean, ``spacing`` mm per axis)
    of a voxel of it. The distance transform runs only on the box reaching ``mm`` beyond the
    mask, which gives the whole volume's answer (every voxel outside it is farther than
    ``mm``) in a third of the time on the template."""
    if not mask.any():
        return np.zeros(mask.shape, dtype=bool)
    spacing = np.asarray(spacing, dtype=float)
    reach = np.ceil(mm / spacing).astype(int) + 1
    (found,) = ndimage.find_objects(mask.astype(np.uint8))
    box = tuple(slice(max(s.start - r, 0), s.stop + r) for s, r in zip(found, reach, strict=True))
    out = np.zeros(mask.shape, dtype=bool)
    out[box] = ndimage.distance_transform_edt(~mask[box], sampling=spacing) <= mm
    return out


def _working_mask(grid: TemplateGrid, dilate_mm: float):
    """The template brain, dilated by ``dilate_mm``, on the template's working grid."""
    sitk = _sitk()
    mask = grid.brain
    if dilate_mm > 0:
        mask = dilate(mask, voxel_spacing(grid.affine), dilate_mm)
    image = _sitk_image(mask.astype(np.float32), grid.affine)
    return sitk.Cast(_on_working_grid(image, sitk.sitkNearestNeighbor), sitk.sitkUInt8)


@functools.lru_cache(maxsize=1)
def _fixed_side():
    """The template's working copy, its brain dilated by :data:`MASK_MM` (the metric's mask)
    and its brain (the quality figure's), on the working grid: made once per process (a
    folder's scans share them; nothing modifies them)."""
    grid = template_grid()
    with _one_thread():
        fixed = _working_copy(grid.t1, grid.affine)
        return fixed, _working_mask(grid, MASK_MM), _working_mask(grid, 0.0)


def _stage(fixed, moving, mask, transform):
    """One multi-resolution Mattes MI optimisation of ``transform`` (modified in place)."""
    sitk = _sitk()
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(BINS)
    method.SetMetricSamplingStrategy(method.REGULAR)
    method.SetMetricSamplingPercentage(SAMPLING, SEED)
    method.SetMetricFixedMask(mask)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0, minStep=1e-3, numberOfIterations=ITERATIONS, relaxationFactor=0.6
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(SHRINK))
    method.SetSmoothingSigmasPerLevel(list(SMOOTH_VOXELS))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    method.SetInitialTransform(transform, inPlace=True)
    method.Execute(fixed, moving)
    return transform


def _register(fixed, moving, mask):
    """The affine transform (template -> scan physical points, LPS) from the rigid stage
    started at the centres of mass, then the affine stage started at the rigid result."""
    sitk = _sitk()
    rigid = sitk.CenteredTransformInitializer(
        fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    _stage(fixed, moving, mask, rigid)
    affine = sitk.AffineTransform(3)
    affine.SetCenter(rigid.GetCenter())
    affine.SetMatrix(rigid.GetMatrix())
    affine.SetTranslation(rigid.GetTranslation())
    return _stage(fixed, moving, mask, affine)


def _ras_matrix(transform) -> np.ndarray:
    """A SimpleITK affine transform (LPS, about its centre) as a 4x4 RAS matrix."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(transform.GetMatrix()).reshape(3, 3)
    centre = np.asarray(transform.GetCenter())
    matrix[:3, 3] = np.asarray(transform.GetTranslation()) + centre - matrix[:3, :3] @ centre
    return _RAS_TO_LPS @ matrix @ _RAS_TO_LPS


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two samples (0 when either is constant)."""
    a = np.asarray(a, dtype=np.float64) - np.mean(a)
    b = np.asarray(b, dtype=np.float64) - np.mean(b)
    norm = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / norm) if norm > 0 else 0.0


def _quality(fixed, moving, brain, transform) -> float:
    """Correlation of the registered scan with the template inside the template brain, both
    smoothed by :data:`QUALITY_SIGMA_MM` (on the working grid)."""
    sitk = _sitk()
    moved = sitk.Resample(moving, fixed, transform, sitk.sitkLinear, 0.0)
    inside = sitk.GetArrayViewFromImage(brain) > 0
    smooth = [sitk.SmoothingRecursiveGaussian(i, QUALITY_SIGMA_MM) for i in (moved, fixed)]
    a, b = (sitk.GetArrayViewFromImage(i)[inside] for i in smooth)
    return correlation(a, b)


def register_to_template(image: np.ndarray, affine: np.ndarray) -> Registration:
    """Register ``image`` (any voxel order; ``affine`` its NIfTI voxel -> RAS mm map) to the
    template (module docstring); failures come back with ``ok`` False and a reason."""
    fixed, mask, brain = _fixed_side()
    with _one_thread():
        moving = _working_copy(image, affine)
        try:
            transform = _register(fixed, moving, mask)
        except RuntimeError as error:  # ITK gives up, e.g. no sample falls inside the scan
            text = str(error).strip().splitlines()
            reason = text[-1] if text else "unknown error"
            return Registration(np.eye(4), 0.0, False, f"registration failed ({reason})")
        quality = _quality(fixed, moving, brain, transform)
    if quality < MIN_CORRELATION:
        reason = (
            f"correlation {quality:.2f} < {MIN_CORRELATION} with the template T1 in its brain "
            "after registration"
        )
        return Registration(_ras_matrix(transform), quality, False, reason)
    return Registration(_ras_matrix(transform), quality, True)


def _voxel_map(out_affine: np.ndarray, world: np.ndarray, in_affine: np.ndarray) -> np.ndarray:
    """Output voxel -> input voxel: ``in_affine^-1 @ world @ out_affine``."""
    return np.linalg.inv(in_affine) @ world @ out_affine


def _resample(array, voxels: np.ndarray, shape, order: int) -> np.ndarray:
    array = np.asarray(array)
    out = ndimage.affine_transform(
        array.astype(np.float32, copy=False),
        voxels[:3, :3],
        voxels[:3, 3],
        output_shape=tuple(shape),
        order=order,
        mode="constant",
        cval=0.0,
        prefilter=False,
    )
    return out.astype(array.dtype, copy=False) if order == 0 else out


def to_template(
    array: np.ndarray, affine: np.ndarray, registration: Registration | np.ndarray, order: int = 1
) -> np.ndarray:
    """``array`` (a scan's, with its ``affine``) on the template grid: ``order`` 1 (linear) for
    images and probabilities, 0 (nearest) for masks; 0 outside the scan."""
    matrix = getattr(registration, "matrix", registration)
    grid = template_grid()
    return _resample(array, _voxel_map(grid.affine, matrix, affine), grid.shape, order)


def to_scan(
    template_array: np.ndarray,
    registration: Registration | np.ndarray,
    shape: tuple[int, ...],
    affine: np.ndarray,
    order: int = 1,
) -> np.ndarray:
    """``template_array`` (on the template grid) on the scan's grid (``shape``, ``affine``)."""
    matrix = getattr(registration, "matrix", registration)
    grid = template_grid()
    inverse = np.linalg.inv(matrix)
    return _resample(template_array, _voxel_map(affine, inverse, grid.affine), shape, order)
