"""Volume IO: RAS reorientation, exact write-back geometry, and one-line errors on bad files."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
from data_files import (
    SHAPE,
    affine,
    volume_and_mask,
    write_dicom_series,
    write_dicom_slices,
    write_nifti,
)

from strokeseg.data import load_mask, load_volume, save_like
from strokeseg.errors import StrokesegError


def _oblique() -> np.ndarray:
    t = np.deg2rad(20)
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    a = np.eye(4)
    a[:3, :3] = rot @ np.diag([0.9, 1.1, 3.0])
    a[:3, 3] = (4, -7, 12)
    return a


GEOMETRIES = {
    "ras": (affine(), 1, 1),
    "lps": (affine(flips=(-1, -1, 1)), 1, 1),
    "oblique": (_oblique(), 2, 1),
    "qform_only": (affine((0.5, 0.7, 4.0), flips=(-1, 1, -1)), 0, 1),
}


@pytest.mark.parametrize("name", GEOMETRIES)
def test_save_like_round_trip_keeps_geometry(tmp_path, name):
    aff, sform, qform = GEOMETRIES[name]
    image, mask = volume_and_mask()
    src = write_nifti(tmp_path / "img.nii.gz", image, aff, sform=sform, qform=qform)
    volume = load_volume(src)
    # every RAS voxel sits at the same world point as its source voxel
    ras_mask = (volume.data > 140).astype(np.uint8)
    out = save_like(ras_mask, volume, tmp_path / "out.nii.gz")
    written, original = nib.load(out), nib.load(src)
    assert written.shape == original.shape
    np.testing.assert_array_equal(written.affine, original.affine)
    assert int(written.header["sform_code"]) == sform
    assert int(written.header["qform_code"]) == qform
    assert written.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(written.dataobj), mask)  # source voxel order


def test_lps_is_flipped_to_ras_with_matching_world_coordinates(tmp_path):
    image, _ = volume_and_mask()
    aff = affine(flips=(-1, -1, 1))
    volume = load_volume(write_nifti(tmp_path / "lps.nii.gz", image, aff))
    x, y, _ = SHAPE
    np.testing.assert_array_equal(volume.data, image[::-1, ::-1, :])
    i, j, k = 3, 5, 2
    src_ijk = np.array([x - 1 - i, y - 1 - j, k, 1])
    np.testing.assert_allclose(volume.affine @ [i, j, k, 1], aff @ src_ijk)
    assert np.all(np.diag(volume.affine)[:3] > 0)


def test_scl_slope_and_inter_are_applied(tmp_path):
    raw = np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE) % 200
    img = nib.Nifti1Image(raw, affine())
    img.header.set_slope_inter(2.0, -1024.0)
    nib.save(img, tmp_path / "ct.nii.gz")
    volume = load_volume(tmp_path / "ct.nii.gz")
    np.testing.assert_array_equal(volume.data, raw * 2.0 - 1024.0)


def test_singleton_4d_is_squeezed_with_a_notice(tmp_path, capsys):
    image, _ = volume_and_mask()
    path = write_nifti(tmp_path / "four.nii.gz", image[..., None])
    volume = load_volume(path)
    assert volume.data.shape == SHAPE
    assert "4D image with one volume" in capsys.readouterr().err
    out = save_like(np.zeros(SHAPE, np.uint8), volume, tmp_path / "out.nii.gz")
    assert nib.load(out).shape == (*SHAPE, 1)


def test_save_like_refuses_to_overwrite(tmp_path):
    image, mask = volume_and_mask()
    volume = load_volume(write_nifti(tmp_path / "img.nii.gz", image))
    out = save_like(mask, volume, tmp_path / "out.nii.gz")
    with pytest.raises(StrokesegError, match="already exists"):
        save_like(mask, volume, out)
    save_like(1 - mask, volume, out, overwrite=True)
    np.testing.assert_array_equal(np.asarray(nib.load(out).dataobj), 1 - mask)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _truncated(tmp_path):
    path = write_nifti(tmp_path / "t.nii.gz", volume_and_mask()[0])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _not_gzip(tmp_path):
    plain = write_nifti(tmp_path / "p.nii", volume_and_mask()[0])
    return plain.rename(tmp_path / "p.nii.gz")


def _with(value):
    def make(tmp_path):
        image = volume_and_mask()[0]
        image[1, 2, 3] = value
        return write_nifti(tmp_path / "bad.nii.gz", image)

    return make


def _png(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(b"png")
    return path


BAD_FILES = {
    "truncated": (_truncated, "truncated"),
    "not gzip": (_not_gzip, "not a gzip file"),
    "nan": (_with(np.nan), "NaN/Inf"),
    "inf": (_with(np.inf), "NaN/Inf"),
    "2d": (lambda d: write_nifti(d / "flat.nii.gz", np.zeros((20, 24), np.float32)), "2D"),
    "4d": (lambda d: write_nifti(d / "t.nii.gz", np.zeros((*SHAPE, 3), np.float32)), "4D"),
    "missing": (lambda d: d / "nope.nii.gz", "not found"),
    "unsupported": (_png, "unsupported"),
}


def test_existing_outputs_are_refused_in_one_line_naming_the_first(tmp_path):
    from strokeseg.data.io import refuse_existing

    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    refuse_existing([a, b, c])  # nothing there yet
    a.write_text("1")
    with pytest.raises(
        StrokesegError, match=r"a.csv: already exists \(pass --overwrite to replace it\)$"
    ):
        refuse_existing([a, b, c])
    b.write_text("2")
    with pytest.raises(StrokesegError, match=r"a.csv: .*, or --skip-existing; 2 file\(s\)\)$"):
        refuse_existing([c, a, b], also=", or --skip-existing")
    refuse_existing([a, b], overwrite=True)


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_images_raise_one_line_naming_the_file(tmp_path, case):
    make, reason = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(StrokesegError) as error:
        load_volume(path)
    message = str(error.value)
    assert message.startswith(str(path)) and reason in message and "\n" not in message


def test_truncated_gzip_after_a_valid_header_is_caught(tmp_path):
    path = write_nifti(tmp_path / "big.nii", np.ones((40, 40, 40), np.float32))
    data = gzip.compress(path.read_bytes())
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(data[: len(data) - 50])
    with pytest.raises(StrokesegError, match="truncated"):
        load_volume(cut)


def test_mask_rules(tmp_path):
    image, mask = volume_and_mask()
    volume = load_volume(write_nifti(tmp_path / "img.nii.gz", image))
    assert load_mask(write_nifti(tmp_path / "m.nii.gz", mask), like=volume).data.dtype == np.uint8
    as_float = load_mask(write_nifti(tmp_path / "f.nii.gz", mask.astype(np.float32)), like=volume)
    np.testing.assert_array_equal(as_float.data, mask)

    labels = mask.copy()
    labels[0, 0, 0] = 2
    with pytest.raises(StrokesegError, match=r"nonbin.nii.gz: mask values must be 0 or 1, found 2"):
        load_mask(write_nifti(tmp_path / "nonbin.nii.gz", labels))
    with pytest.raises(StrokesegError, match=r"shape.nii.gz: mask shape .*img.nii.gz"):
        load_mask(write_nifti(tmp_path / "shape.nii.gz", mask[:, :, :4]), like=volume)
    shifted = affine(origin=(0.0, 0.0, 0.0))
    with pytest.raises(StrokesegError, match=r"aff.nii.gz: mask affine differs .*img.nii.gz"):
        load_mask(write_nifti(tmp_path / "aff.nii.gz", mask, shifted), like=volume)


def test_dicom_series_gets_a_ras_affine_matching_simpleitk_world_points(tmp_path):
    import SimpleITK as sitk

    rng = np.random.default_rng(1)
    array_zyx = rng.integers(-100, 100, size=(5, 12, 10)).astype(np.int16)
    direction = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # rotated 90 degrees in-plane
    spacing, origin = (0.5, 0.6, 4.0), (10.0, -20.0, 30.0)
    folder = write_dicom_series(tmp_path / "series", array_zyx, spacing, origin, direction)
    volume = load_volume(folder)
    assert sorted(volume.data.shape) == sorted(array_zyx.shape)

    reference = sitk.GetImageFromArray(array_zyx)
    reference.SetSpacing(spacing)
    reference.SetOrigin(origin)
    reference.SetDirection(direction)
    for i, j, k in [(0, 0, 0), (9, 11, 4), (3, 7, 2)]:
        lps = np.array(reference.TransformIndexToPhysicalPoint((i, j, k)))
        ras = np.array([-lps[0], -lps[1], lps[2], 1.0])
        ijk = np.rint(np.linalg.solve(volume.affine, ras)[:3]).astype(int)
        assert volume.data[tuple(ijk)] == array_zyx[k, j, i]


def test_unreadable_dicom_series(tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    for k in range(3):
        (folder / f"s{k}.dcm").write_bytes(b"not dicom at all" * 10)
    with pytest.raises(StrokesegError, match=f"{folder}: no readable DICOM series"):
        load_volume(folder)


TILT = np.deg2rad(20.0)
ROW = np.array([1.0, 0.0, 0.0])  # LPS
GAPS = [2.5, 2.5, 2.5, 5.0, 5.0, 5.0]  # thin posterior-fossa slices, thicker above


def uneven_series(folder, tilt: str):
    """Seven 12x10 slices with uneven gaps under a 20-degree gantry tilt: ``oblique`` tilts
    the slice plane (ImageOrientationPatient) and stacks along its normal; ``sheared`` keeps
    the plane axial and shifts each slice posteriorly (positions off the normal)."""
    rng = np.random.default_rng(2)
    slices = rng.integers(-100, 100, size=(7, 12, 10)).astype(np.int16)
    slices += (300 * np.arange(7)).astype(np.int16)[:, None, None]  # each slice its own range
    tilted = np.array([0.0, np.cos(TILT), np.sin(TILT)])
    col = tilted if tilt == "oblique" else np.array([0.0, 1.0, 0.0])
    stack = np.cross(ROW, tilted) if tilt == "oblique" else np.array([0, np.sin(TILT), 1.0])
    stack = stack / np.linalg.norm(stack)
    t = np.concatenate([[0.0], np.cumsum(GAPS)]) / abs(stack @ np.cross(ROW, col))
    positions = np.array([10.0, -20.0, 30.0]) + np.outer(t, stack)
    direction = tuple(np.column_stack([ROW, col, np.cross(ROW, col)]).ravel())
    write_dicom_slices(folder, slices, (0.5, 0.6), positions, direction)
    return slices, positions, col


@pytest.mark.parametrize("tilt", ["oblique", "sheared"])
def test_uneven_tilted_dicom_keeps_every_slice_at_its_position(tmp_path, capsys, tilt):
    from scipy.ndimage import map_coordinates

    slices, positions, col = uneven_series(tmp_path / "series", tilt)
    volume = load_volume(tmp_path / "series")
    assert "unevenly spaced" in capsys.readouterr().err
    j, i = np.mgrid[0:12, 0:10]
    to_voxel = np.linalg.inv(volume.affine)
    for k, position in enumerate(positions):  # slice k's pixels, where its header puts them
        lps = position + 0.5 * i[..., None] * ROW + 0.6 * j[..., None] * col
        ras = np.concatenate([lps * [-1, -1, 1], np.ones(i.shape + (1,))], axis=-1)
        voxels = (ras @ to_voxel.T)[..., :3]
        got = map_coordinates(volume.data, voxels.reshape(-1, 3).T, order=1, mode="nearest")
        np.testing.assert_allclose(got.reshape(12, 10), slices[k], rtol=0, atol=1e-3)
    # the even grid: 22.5 mm of stack in steps of the smallest gap, 2.5 mm along the normal
    assert volume.source.shape == (10, 12, 10)
    columns = volume.source.affine[:3, :3]
    normal = np.cross(columns[:, 0], columns[:, 1])
    assert abs(columns[:, 2] @ normal) / np.linalg.norm(normal) == pytest.approx(2.5)


def test_even_dicom_series_reads_as_before_without_a_note(tmp_path, capsys):
    import SimpleITK as sitk

    rng = np.random.default_rng(3)
    array_zyx = rng.integers(-100, 100, size=(6, 12, 10)).astype(np.int16)
    direction = tuple(np.column_stack([ROW, [0, np.cos(TILT), np.sin(TILT)],
                                       [0, -np.sin(TILT), np.cos(TILT)]]).ravel())  # fmt: skip
    folder = write_dicom_series(tmp_path / "s", array_zyx, (0.5, 0.6, 4.0), (1.0, 2, 3), direction)
    volume = load_volume(folder)
    assert "unevenly" not in capsys.readouterr().err
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    expected = np.diag([-1.0, -1.0, 1.0]) @ np.reshape(image.GetDirection(), (3, 3))
    np.testing.assert_allclose(volume.source.affine[:3, :3], expected @ np.diag(image.GetSpacing()))
    assert volume.source.get_data_dtype() == np.int16
    np.testing.assert_array_equal(
        np.asarray(volume.source.dataobj), np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0))
    )


def test_predict_writes_an_uneven_series_mask_on_its_even_grid(tmp_path, cli):
    import torch

    from strokeseg.models import create_model

    checkpoint = tmp_path / "unet.ckpt"
    state = {f"model.{k}": v for k, v in create_model("unet", width=0.125).state_dict().items()}
    meta = {"model_name": "unet", "model_kwargs": {"width": 0.125},
            "data": {"modality": "ct", "window": "brain"}}  # fmt: skip
    torch.save({"strokeseg": meta, "state_dict": state}, checkpoint)
    _, positions, col = uneven_series(tmp_path / "series", "oblique")
    result = cli("predict", "-i", tmp_path / "series", "-o", tmp_path / "out",
                 "--checkpoint", checkpoint)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resampled to an even grid of 10 slices, 2.5 mm apart" in result.stderr
    (written,) = (tmp_path / "out").glob("*_mask.nii.gz")
    mask = nib.load(written)
    # the grid by hand: the first slice's position, the series' row and column, 2.5 mm steps
    # along the tilted normal; in RAS (x and y of LPS negated)
    expected = np.eye(4)
    normal = np.cross(ROW, col)
    expected[:3, :4] = np.column_stack([0.5 * ROW, 0.6 * col, 2.5 * normal, positions[0]])
    expected[:2] *= -1
    assert mask.shape == (10, 12, 10)
    np.testing.assert_allclose(mask.affine, expected, rtol=0, atol=1e-5)
