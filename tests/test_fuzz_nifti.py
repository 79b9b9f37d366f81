"""Fuzzed NIfTI files (Hypothesis): every outcome of reading a scan or a mask, as predict,
check and evaluate do, is a result or one clean StrokesegError line, never a traceback."""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strokeseg.data.io import MAX_VOXELS, Volume, load_mask, load_volume
from strokeseg.errors import StrokesegError

DTYPES = (2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1536, 2304, 0, 3, 9999)
"""NIfTI datatype codes: the usual ones, complex, RGB, (u)int64, float128, and invalid codes."""
ODD = st.sampled_from([0.0, -1.0, -0.0, float("nan"), float("inf"), float("-inf"), 1e-30, 1e30])


@st.composite
def nifti_files(draw) -> tuple[str, bytes]:
    """A NIfTI-1 file as bytes: header fields and voxel data fuzzed, maybe gzip, maybe cut."""
    ndim = draw(st.integers(0, 7))
    shape = draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim))
    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape(shape or [1])
    if draw(st.booleans()):  # huge shape (a header says anything); data stays tiny
        header["dim"][1:4] = draw(st.sampled_from([(32767, 32767, 32767), (4096, 4096, 512)]))
    header["dim"][0] = ndim if draw(st.booleans()) else draw(st.integers(-2, 9))
    header["datatype"] = draw(st.sampled_from(DTYPES))
    header["bitpix"] = draw(st.sampled_from([8, 16, 32, 64, 128, 0]))
    pixdim = [draw(st.one_of(st.floats(0.5, 3), ODD)) for _ in range(3)]
    header["pixdim"][1:4] = pixdim
    header["qform_code"], header["sform_code"] = draw(st.integers(0, 4)), draw(st.integers(0, 4))
    if draw(st.booleans()):
        header["srow_x"][:] = [draw(st.one_of(st.floats(-2, 2), ODD)) for _ in range(4)]
    header["scl_slope"] = draw(st.one_of(st.just(1.0), ODD))
    header["scl_inter"] = draw(st.one_of(st.just(0.0), ODD))
    header["vox_offset"] = draw(st.sampled_from([352, 352, 0, 1000]))
    values = draw(
        st.lists(
            st.one_of(st.floats(-1e3, 1e3), st.sampled_from([0.0, 1.0, np.nan, np.inf])),
            min_size=0,
            max_size=200,
        )
    )
    body = header.binaryblock + b"\0" * 4 + np.asarray(values, dtype=np.float32).tobytes()
    if draw(st.booleans()):
        body = body[: draw(st.integers(0, len(body)))]  # cut anywhere, header included
    if draw(st.booleans()):
        data = gzip.compress(body)
        if draw(st.booleans()):  # broken gzip: cut or flipped bytes
            cut = draw(st.integers(0, len(data)))
            data = data[:cut] + bytes(b ^ 0x5A for b in data[cut : cut + 8])
        return "scan.nii.gz", data
    return "scan.nii", body


def _read(kind, path: Path):
    try:
        return kind(path)
    except StrokesegError as error:
        text = str(error)
        assert "\n" not in text and str(path) in text, text  # one line naming the file
        return error


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nifti_files())
def test_reading_a_fuzzed_file_gives_a_volume_or_one_clean_line(case):
    name, data = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        for kind in (load_volume, load_mask):
            outcome = _read(kind, path)
            if isinstance(outcome, Volume):  # a result is a usable 3D finite volume
                assert outcome.data.ndim == 3 and np.isfinite(outcome.data).all()
                assert outcome.voxel_mm3 > 0 and np.isfinite(outcome.affine).all()


def test_a_scan_too_large_for_memory_is_refused_before_allocation(tmp_path, monkeypatch):
    header = nib.Nifti1Header()
    header.set_data_dtype(np.float64)
    header.set_data_shape((4096, 4096, 4096))  # 512 GiB as float64, 256 GiB as float32
    path = tmp_path / "huge.nii"
    path.write_bytes(header.binaryblock + b"\0" * 4 + b"\0" * 1024)

    def no_allocation(*args, **kwargs):
        raise AssertionError("voxel data must not be read")

    monkeypatch.setattr(nib.Nifti1Image, "get_fdata", no_allocation)
    with pytest.raises(StrokesegError, match=r"huge.nii: 4096x4096x4096 voxels .* over the limit"):
        load_volume(path)
    assert MAX_VOXELS < 4096**3


def test_fuzzed_files_through_the_command_line(tmp_path, cli):
    """A few through the real CLI: check and evaluate print a result or one error line."""
    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape((3, 3, 3))
    header["pixdim"][1:4] = [0, 1, 1]  # zero voxel size (nibabel logs and repairs it)
    header["vox_offset"] = 352
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt" / "a.nii").write_bytes(header.binaryblock + b"\0" * (4 + 27 * 4))
    (tmp_path / "pred" / "a_mask.nii.gz").write_bytes(gzip.compress(b"\0" * 500)[:-9])
    result = cli(
        "evaluate", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--out", tmp_path / "e"
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "a_mask.nii.gz: cannot read NIfTI (file is truncated)" in result.stderr
    images, masks = tmp_path / "d" / "images", tmp_path / "d" / "masks"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), images / "a.nii.gz")
    (masks / "a.nii.gz").write_bytes(header.binaryblock + b"\0" * 4 + b"\x7f\xc0\0\0" * 64)
    result = cli("check", "--data", tmp_path / "d")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "problems:  1" in result.stdout
