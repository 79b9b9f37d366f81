"""The left-right mirror input (data.mirror): the reflection about x = 0 mm, its channels in
training and at inference, and its refusal for a grid off the midline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from strokeseg.data.crop import whole_plan
from strokeseg.data.io import Volume
from strokeseg.data.mirror import mirror_lr, with_mirror
from strokeseg.data.slices import stack_context, to_slices
from strokeseg.errors import StrokesegError
from strokeseg.training.config import load_config


def grid(origin_x: float, shape=(9, 4, 3), affine: np.ndarray | None = None) -> Volume:
    if affine is None:
        affine = np.eye(4)
        affine[:3, 3] = (origin_x, -2.0, -1.0)
    data = np.random.default_rng(0).random(shape, dtype=np.float32)
    return Volume(Path("scan.nii.gz"), data, affine, None)


def test_a_grid_symmetric_about_the_midline_is_flipped_exactly():
    volume = grid(-4.0)  # x = -4 .. 4 mm
    np.testing.assert_array_equal(mirror_lr(volume.data, volume), volume.data[::-1])


def test_a_grid_off_centre_by_whole_voxels_is_flipped_and_shifted():
    volume = grid(-3.0)  # x = -3 .. 5 mm: voxel i (x = i - 3) shows x = 3 - i, voxel 6 - i
    got = mirror_lr(volume.data, volume)
    for i in range(9):
        expected = volume.data[6 - i] if 6 - i >= 0 else np.zeros_like(volume.data[0])
        np.testing.assert_allclose(got[i], expected, atol=1e-6)


def test_an_oblique_grid_shows_the_reflected_world_point():
    # a field linear in world coordinates is reproduced exactly by linear interpolation, so the
    # mirror at a voxel must equal the field at the reflected world point (where it is inside)
    angle = np.deg2rad(10)
    affine = np.eye(4)
    affine[:3, :3] = [
        [np.cos(angle), -np.sin(angle), 0],
        [np.sin(angle), np.cos(angle), 0],
        [0, 0, 1],
    ]
    affine[:3, :3] *= 1.5
    affine[:3, 3] = (-15.0, -12.0, -3.0)
    shape = (21, 17, 5)
    index = np.stack(np.meshgrid(*map(np.arange, shape), indexing="ij"), -1).reshape(-1, 3)
    world = index @ affine[:3, :3].T + affine[:3, 3]

    def field(w):
        return 0.3 * w[:, 0] - 0.2 * w[:, 1] + 0.1 * w[:, 2] + 7

    volume = Volume(Path("s"), field(world).reshape(shape).astype(np.float32), affine, None)
    got = mirror_lr(volume.data, volume).reshape(-1)
    reflected = world * [-1, 1, 1]
    back = (reflected - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T
    inside = np.all((back >= 0) & (back <= np.array(shape) - 1), axis=1)
    assert inside.mean() > 0.5
    np.testing.assert_allclose(got[inside], field(reflected)[inside], rtol=1e-4)


def test_a_grid_off_the_midline_is_refused_with_the_file_named():
    volume = grid(10.0)  # x = 10 .. 18 mm: no midline
    with pytest.raises(StrokesegError, match=r"scan\.nii\.gz: data\.mirror"):
        mirror_lr(volume.data, volume)


def test_mirror_channels_follow_the_scan_channels_in_training_and_at_inference():
    volume = grid(-4.0, shape=(9, 16, 5))
    stacked = with_mirror(volume.data, volume, mirror=True)
    assert stacked.shape == (2, 9, 16, 5)
    assert with_mirror(volume.data, volume, mirror=False) is volume.data
    # training: the cache's (Z, 2, H, W) slices; inference: the plan's crops of (2, X, Y, Z)
    slices = np.stack([to_slices(v, pad=True) for v in stacked], axis=1)
    train = stack_context(slices, np.arange(5), 1)
    plan = whole_plan(volume.data.shape)
    infer = plan.extract(stacked, np.arange(5), context=1)
    assert train.shape == infer.shape == (5, 6, 16, 16)
    np.testing.assert_array_equal(train, infer)
    scan, mirror = to_slices(volume.data, pad=True), to_slices(volume.data[::-1], pad=True)
    np.testing.assert_array_equal(infer[2, 1], scan[2])  # channel c: slice z - 1 + c
    np.testing.assert_array_equal(infer[2, 3], mirror[1])  # then the mirror's 3 slices
    np.testing.assert_array_equal(infer[0, 3], 0)  # below the first slice: zeros


def test_mirror_doubles_the_input_channels():
    config = load_config("tiny", ["data.context_slices=1", "data.mirror=true"])
    assert config.model_kwargs()["in_channels"] == 6
    assert load_config("tiny", ["data.mirror=true"]).model_kwargs()["in_channels"] == 2
    with pytest.raises(StrokesegError, match="with data.mirror feeds 6"):
        load_config(
            "tiny", ["data.context_slices=1", "data.mirror=true", "model.kwargs.in_channels=3"]
        ).model_kwargs()


def test_train_refuses_the_mirror_for_ct_in_one_line_and_writes_nothing(tmp_path, cli):
    import json

    from data_files import volume_and_mask, write_nifti

    data = tmp_path / "ct"
    (data / "imagesTr").mkdir(parents=True)
    (data / "dataset.json").write_text(
        json.dumps({"channel_names": {"0": "CT"}, "file_ending": ".nii.gz"}), encoding="utf-8"
    )
    for i in range(4):
        image, mask = volume_and_mask(seed=i)
        write_nifti(data / "imagesTr" / f"case_{i:03d}_0000.nii.gz", image)
        write_nifti(data / "labelsTr" / f"case_{i:03d}.nii.gz", mask)
    out = tmp_path / "run"
    result = cli("train", "--config", "demo", "--data", data, "--out", out)
    assert result.returncode != 0
    assert "data.mirror needs scans registered to a symmetric template" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_the_cpu_profile_keeps_the_mirror_for_mri_and_leaves_it_out_for_ct():
    from strokeseg.jobs.benchmark_rows import profile_overrides

    assert load_config("demo").data.mirror  # the demo's cohort is on the symmetric template
    assert load_config("tiny", profile_overrides("cpu", "unetpp", "mri")).data.mirror
    assert not load_config("tiny", profile_overrides("cpu", "unetpp", "ct")).data.mirror


def test_train_refuses_the_mirror_for_scans_off_the_template_before_writing(
    tiny_dataset, tmp_path, cli
):
    # the blob scans' grids start at the world origin: x = 0 is their edge, not a midline
    out = tmp_path / "run"
    result = cli("train", "--config", "demo", "--data", tiny_dataset, "--out", out)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "case0.nii.gz: data.mirror: the grid's centre mirrored" in result.stderr
    assert "pass --set data.mirror=false" in result.stderr
    assert not out.exists()


def test_the_header_check_agrees_with_the_check_on_the_loaded_volume(tmp_path):
    from data_files import write_nifti

    from strokeseg.data.io import load_volume
    from strokeseg.data.mirror import check_scans

    # an LPS-ordered grid (as DICOM converters write it) centred on x = 0, and one beside it
    flip = np.diag([-2.0, -2.0, 2.0, 1.0])
    centred, beside = flip.copy(), flip.copy()
    centred[:3, 3] = (8.0, 6.0, -4.0)  # x = 8 .. -8 mm over 9 voxels
    beside[:3, 3] = (-10.0, 6.0, -4.0)  # x = -10 .. -26 mm
    data = np.zeros((9, 7, 5), dtype=np.float32)
    good = write_nifti(tmp_path / "centred.nii.gz", data, centred)
    bad = write_nifti(tmp_path / "beside.nii.gz", data, beside)
    check_scans([good])
    with pytest.raises(StrokesegError, match="beside.nii.gz: data.mirror.*data.mirror=false"):
        check_scans([good, bad])
    volume = load_volume(bad)
    with pytest.raises(StrokesegError, match="beside.nii.gz: data.mirror"):
        mirror_lr(volume.data, volume)
    volume = load_volume(good)
    np.testing.assert_array_equal(mirror_lr(volume.data + 1, volume), volume.data + 1)


def test_training_moves_the_mirror_channels_alone_by_a_small_affine():
    import torch
    from scipy import ndimage

    from strokeseg.data.augment import mirror_misalignment
    from strokeseg.data.cache import SliceDataset

    smooth = ndimage.gaussian_filter(np.random.default_rng(1).random((3, 64, 64)), (0, 3, 3))
    image = torch.from_numpy(np.concatenate([smooth, smooth]).astype(np.float32))  # twins
    dataset = SliceDataset.__new__(SliceDataset)  # only the misalignment step is exercised
    dataset.misalign = mirror_misalignment()
    moved = [dataset._misalign({"image": image.clone()})["image"] for _ in range(8)]
    for out in moved:
        torch.testing.assert_close(out[:3], image[:3])  # the scan's channels untouched
        assert (out[3:] - image[3:]).abs().max() > 1e-3  # never the perfect twin
        # small: the best integer shift that realigns the twin is within 3 pixels
        errors = {
            (dy, dx): float(
                (torch.roll(out[3:], (dy, dx), (1, 2)) - image[3:])[:, 8:-8, 8:-8].abs().mean()
            )
            for dy in range(-4, 5)
            for dx in range(-4, 5)
        }
        dy, dx = min(errors, key=errors.get)
        assert abs(dy) <= 3 and abs(dx) <= 3
    assert len({round(float(m[3:].sum()), 3) for m in moved}) > 1  # a new draw each time
