"""Geometry-exact volume IO: read NIfTI or DICOM, work in RAS, write back in the source geometry.

Everything the project computes is on RAS-canonical arrays (nibabel's closest canonical
orientation: a pure axis permutation/flip, never a resampling). :meth:`Volume.to_source` is the
exact inverse, and :func:`save_like` writes a mask with a copy of the input header, so the output
has the input's shape, affine, qform/sform codes and voxel order (DESIGN.md section 6).
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import struct
import sys
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from glob import escape as glob_escape
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

from strokeseg.errors import StrokesegError

NIFTI_SUFFIXES = (".nii.gz", ".nii")
_RAS = axcodes2ornt("RAS")
# nibabel prints header repairs ("pixdim[1,2,3] should be non-zero; setting 0 dims to 1") on
# stderr; reads suppress its handler and this keeps Python's last-resort printer off, so the
# CLI's output stays strokeseg's own (an application's logging setup still sees them).
logging.getLogger("nibabel").addHandler(logging.NullHandler())
_READ_ERRORS = (
    OSError,
    EOFError,
    zlib.error,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    OverflowError,
    MemoryError,
    struct.error,
    nib.filebasedimages.ImageFileError,
    nib.spatialimages.HeaderDataError,
    nib.spatialimages.ImageDataError,
)
"""What nibabel raises on a malformed header or voxel block (fuzzed in tests/test_fuzz_nifti)."""
MAX_VOXELS = 2**30
"""Largest scan read (4 GiB as float32; a 512x512x1000 CT is a quarter of it): a header may
claim any shape, so larger ones are refused from the header, before any allocation."""


@dataclass
class Volume:
    """A 3D volume in RAS-canonical voxel order, with the image it came from."""

    path: Path
    data: np.ndarray  # float32 images, uint8 masks; RAS-canonical, shape (X, Y, Z)
    affine: np.ndarray  # affine of `data`
    source: nib.Nifti1Image  # the image as read (header, affine, codes, shape)

    @property
    def voxel_mm3(self) -> float:
        """Volume of one voxel in mm3."""
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    @property
    def spacing(self) -> tuple[float, float, float]:
        return voxel_spacing(self.affine)

    def to_source(self, array_ras: np.ndarray) -> np.ndarray:
        """Exact inverse of the RAS reorientation: ``array_ras`` in the source voxel order."""
        array_ras = np.asarray(array_ras)
        if array_ras.shape != self.data.shape:
            raise ValueError(f"array shape {array_ras.shape} != volume shape {self.data.shape}")
        back = ornt_transform(_RAS, io_orientation(self.source.affine))
        return apply_orientation(array_ras, back).reshape(self.source.shape)


def voxel_spacing(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size in mm along each array axis of a grid (the affine's column lengths)."""
    return tuple(float(s) for s in np.linalg.norm(np.asarray(affine, float)[:3, :3], axis=0))


def is_nifti(path: Path) -> bool:
    return path.name.endswith(NIFTI_SUFFIXES)


def strip_nifti(name: str) -> str:
    """``case_0000.nii.gz`` -> ``case_0000``."""
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _truncated_gzip(path: Path) -> bool:
    """Whether ``path`` is a gzip stream that ends early (diagnosis after a failed read)."""
    if not path.name.endswith(".gz"):
        return False
    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 24):
                pass
    except (EOFError, zlib.error):
        return True
    except OSError:
        return False
    return False


def _read_nifti(path: Path) -> tuple[nib.Nifti1Image, np.ndarray]:
    if path.name.endswith(".gz"):
        with open(path, "rb") as f:
            if f.read(2) != b"\x1f\x8b":
                raise StrokesegError(f"{path}: not a gzip file despite the .gz suffix")
    try:
        with nib.imageglobals.LoggingOutputSuppressor():
            image = nib.load(path)
        if not isinstance(image, nib.Nifti1Image):  # Nifti2Image is a subclass
            raise StrokesegError(f"{path}: not a NIfTI image ({type(image).__name__})")
        _check_size(path, image.shape)
        with np.errstate(all="ignore"):  # overflow in scaling shows up as Inf, refused later
            data = np.asarray(image.get_fdata(dtype=np.float32))  # applies scl_slope/scl_inter
    except _READ_ERRORS as error:
        reason = "file is truncated" if _truncated_gzip(path) else _short(error)
        raise StrokesegError(f"{path}: cannot read NIfTI ({reason})") from None
    return image, data


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def _check_size(path: Path, shape: tuple[int, ...]) -> None:
    """Refuse a header whose shape exceeds :data:`MAX_VOXELS` (before reading any voxel)."""
    voxels = int(np.prod([int(n) for n in shape], dtype=object)) if shape else 1
    if voxels > MAX_VOXELS:
        shown = "x".join(str(int(n)) for n in shape)
        raise StrokesegError(
            f"{path}: {shown} voxels ({voxels * 4 / 2**30:.0f} GiB as float32) is over the limit "
            f"of {MAX_VOXELS:,} voxels for one scan"
        )


def _read(path: Path) -> tuple[nib.Nifti1Image, np.ndarray]:
    if not path.exists():
        raise StrokesegError(f"{path}: file not found")
    if path.is_dir():
        from strokeseg.data.dicom import read_dicom

        return read_dicom(path)
    if not is_nifti(path):
        raise StrokesegError(f"{path}: unsupported file type (expected .nii, .nii.gz or DICOM)")
    return _read_nifti(path)


def _valid_affine(affine: np.ndarray) -> bool:
    """Finite, with a voxel of nonzero volume."""
    return bool(np.isfinite(affine).all() and abs(np.linalg.det(affine[:3, :3])) >= 1e-12)


def _as_volume(path: Path, image: nib.Nifti1Image, data: np.ndarray) -> Volume:
    if data.ndim == 4 and data.shape[3] == 1:
        print(f"strokeseg: notice: {path}: 4D image with one volume, used as 3D", file=sys.stderr)
        data = data[..., 0]
    if data.ndim != 3:
        raise StrokesegError(f"{path}: image is {data.ndim}D {data.shape}, expected 3D")
    if not np.isfinite(data).all():
        bad = int(np.count_nonzero(~np.isfinite(data)))
        raise StrokesegError(f"{path}: {bad} NaN/Inf voxels")
    if not _valid_affine(image.affine):
        raise StrokesegError(
            f"{path}: degenerate voxel-to-world affine (zero, NaN or Inf voxel size or "
            "direction); fix the header's pixdim/qform/sform"
        )
    to_ras = ornt_transform(io_orientation(image.affine), _RAS)
    data_ras = np.ascontiguousarray(apply_orientation(data, to_ras))
    affine_ras = image.affine @ nib.orientations.inv_ornt_aff(to_ras, data.shape)
    return Volume(path=path, data=data_ras, affine=affine_ras, source=image)


def read_grid(path: str | Path) -> tuple[np.ndarray, tuple[int, ...]]:
    """The voxel-to-world affine and shape of an image: from the header alone for NIfTI, by
    reading the series for DICOM; an unreadable file gets :func:`load_volume`'s error."""
    path = Path(path)
    if path.is_file() and is_nifti(path):
        try:
            with nib.imageglobals.LoggingOutputSuppressor():
                image = nib.load(path)
            if _valid_affine(image.affine):
                return np.asarray(image.affine, dtype=float), tuple(image.shape)
        except _READ_ERRORS:
            pass
    volume = load_volume(path)
    return volume.affine, volume.data.shape


def load_volume(path: str | Path) -> Volume:
    """Read a .nii/.nii.gz file or a DICOM series folder as a float32 RAS volume (validated)."""
    path = Path(path)
    image, data = _read(path)
    return _as_volume(path, image, data)


def load_mask(path: str | Path, like: Volume | None = None) -> Volume:
    """Read a lesion mask; every voxel must be exactly 0 or 1 (after scl_slope/inter).

    With ``like``, the mask must also have the image's RAS shape and affine (within 1e-3 mm).
    """
    path = Path(path)
    volume = load_volume(path)
    binary = (volume.data == 0) | (volume.data == 1)
    if not binary.all():
        found = np.unique(volume.data[~binary])
        shown = ", ".join(f"{v:g}" for v in found[:5]) + (", ..." if found.size > 5 else "")
        raise StrokesegError(f"{path}: mask values must be 0 or 1, found {shown}")
    volume.data = volume.data.astype(np.uint8)
    if like is not None:
        if volume.data.shape != like.data.shape:
            raise StrokesegError(
                f"{path}: mask shape {volume.data.shape} != image shape {like.data.shape} "
                f"of {like.path}"
            )
        if not np.allclose(volume.affine, like.affine, rtol=0, atol=1e-3):
            raise StrokesegError(f"{path}: mask affine differs from image affine of {like.path}")
    return volume


def refuse_existing(paths: Iterable[str | Path], overwrite: bool = False, also: str = "") -> None:
    """Refuse outputs that exist (unless ``overwrite``), in one line naming the first and, when
    several, how many; ``also`` names another way out (``, or --skip-existing ...``)."""
    if overwrite:
        return
    clashes = [Path(p) for p in paths if Path(p).exists()]
    if clashes:
        count = f"; {len(clashes)} file(s)" if len(clashes) > 1 else ""
        raise StrokesegError(
            f"{clashes[0]}: already exists (pass --overwrite to replace it{also}{count})"
        )


def _temporary_sibling(path: Path, overwrite: bool) -> Path:
    """A temporary sibling of ``path`` with its suffix; refuses to clobber without ``overwrite``."""
    refuse_existing([path], overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if path.name.endswith(".nii.gz") else path.suffix
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _remove_stale(path: Path) -> None:
    """Remove temporaries of ``path`` left by killed processes (their pid no longer runs)."""
    prefix = f".{path.name}."
    for sibling in path.parent.glob(f".{glob_escape(path.name)}.*.tmp*"):
        pid = sibling.name[len(prefix) :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            _remove(sibling)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write (a file or a folder); on success it
    replaces ``path`` in one ``os.replace``, on any failure (or a kill) it never does.

    So a reader sees the old file or the whole new one, never a truncated one. The one
    atomic-write helper of the package (DESIGN.md: ``data/`` holds atomic writes).
    An existing ``path`` is refused unless ``overwrite``.
    """
    path = Path(path)
    tmp = _temporary_sibling(path, overwrite)
    _remove(tmp)
    _remove_stale(path)
    try:
        yield tmp
        if tmp.is_dir() and path.is_dir():
            shutil.rmtree(path)  # os.replace cannot replace a non-empty folder
        os.replace(tmp, path)
    finally:
        _remove(tmp)


def write_atomic(path: str | Path, data: str | bytes, *, overwrite: bool = False) -> Path:
    """Write ``data`` (text as UTF-8) atomically; an existing ``path`` needs ``overwrite``."""
    path = Path(path)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def save_like(
    array_ras: np.ndarray, reference: Volume, path: str | Path, *, overwrite: bool = False
) -> Path:
    """Write a {0,1} mask as uint8 in ``reference``'s own geometry and header, atomically."""
    array_ras = np.asarray(array_ras)
    if not np.isin(array_ras, (0, 1)).all():
        raise ValueError("save_like writes binary masks: values must be 0 or 1")
    return save_labels_like(array_ras, reference, path, overwrite=overwrite)


def save_labels_like(
    array_ras: np.ndarray, reference: Volume, path: str | Path, *, overwrite: bool = False
) -> Path:
    """Write a label image (integers 0..65535; uint8 when they fit) like :func:`save_like`."""
    array_ras = np.asarray(array_ras)
    if array_ras.size and (array_ras.min() < 0 or array_ras.max() > np.iinfo(np.uint16).max):
        raise ValueError("label images hold integers 0..65535")
    dtype = np.uint8 if not array_ras.size or array_ras.max() <= 255 else np.uint16
    return _save_like(array_ras.astype(dtype), reference, path, (0, 0), overwrite)


def save_probabilities_like(
    array_ras: np.ndarray, reference: Volume, path: str | Path, *, overwrite: bool = False
) -> Path:
    """Write a probability map (float32 in [0, 1]) like :func:`save_like`."""
    array_ras = np.asarray(array_ras, dtype=np.float32)
    finite = np.isfinite(array_ras).all()
    if array_ras.size and not (finite and array_ras.min() >= 0 and array_ras.max() <= 1):
        raise ValueError("probability maps hold finite values in [0, 1]")
    return _save_like(array_ras, reference, path, (0, 1), overwrite)


def _save_like(
    array_ras: np.ndarray, reference: Volume, path: str | Path, cal: tuple, overwrite: bool
) -> Path:
    """``array_ras`` in ``reference``'s voxel order, header and affine, in its own dtype."""
    path = Path(path)
    header = reference.source.header.copy()
    header.set_data_dtype(array_ras.dtype)
    header.set_slope_inter(1.0, 0.0)
    header["cal_min"], header["cal_max"] = cal
    image = type(reference.source)(reference.to_source(array_ras), None, header=header)
    with atomic_path(path, overwrite=overwrite) as tmp:
        nib.save(image, tmp)
    return path
