"""Every model family is evaluated on the grid it was trained on (inference/grid.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_files import write_nifti

import strokeseg
from strokeseg.data.io import Volume, load_volume
from strokeseg.data.preprocessing import Preprocessing, TrainingData, prepare
from strokeseg.inference.grid import is_grid_bound, training_grid
from strokeseg.inference.runtime import make_runtime
from strokeseg.inference.slicing import scan_probabilities

GRID = [64, 48]  # a training grid unlike any crop box of the scan below
GRID_BOUND = {"swin_unet", "transunet"}


def test_training_grid_from_meta_patch_size_or_the_training_slicing():
    def grid(meta, shape):
        return training_grid(TrainingData.from_meta(meta).slice_grid, shape)

    assert grid({"data": {"slice_grid": [224, 192]}}, (512, 512, 30)) == (224, 192)
    assert grid({"data": {}, "config": {"data": {"patch_size": 64}}}, (9, 9, 9)) == (64, 64)
    # whole-slice training crops each in-plane size down to a multiple of 16 (data/slices.py)
    assert grid({"data": {}}, (197, 233, 189)) == (224, 192)


def scan(tmp_path) -> Volume:
    rng = np.random.default_rng(0)
    image = np.zeros((90, 110, 3), dtype=np.float32)
    image[20:70, 15:95] = 400 + rng.normal(0, 10, (50, 80, 3))
    return load_volume(write_nifti(tmp_path / "scan.nii.gz", image))


@pytest.mark.parametrize("name", strokeseg.list_models())
def test_each_family_runs_on_its_training_grid_or_the_crop_boxes(tmp_path, name):
    torch.manual_seed(0)
    kwargs = {"width": 0.125}
    if name == "swin_unet":
        kwargs = {"width": 0.125, "window_size": 4}  # windows of 4: a 128-pixel multiple
    network = strokeseg.deploy(strokeseg.create_model(name, **kwargs))
    assert is_grid_bound(network) == (name in GRID_BOUND)
    seen: list[tuple[int, int]] = []
    network.register_forward_pre_hook(lambda _, args: seen.append(tuple(args[0].shape[-2:])))
    volume = scan(tmp_path)
    run = make_runtime(network, "eager", threads=1)
    prepared = prepare(volume, Preprocessing())
    p = scan_probabilities([run], [network], prepared, slice_grid=tuple(GRID))
    assert p.shape == volume.data.shape and np.isfinite(p).all()
    boxes = prepared.plan.boxes
    box_sizes = {(int(b[2] - b[1]), int(b[4] - b[3])) for b in boxes}
    assert seen
    if name in GRID_BOUND:
        assert set(seen) == {tuple(GRID)}  # boxes larger than the grid go by sliding windows
    else:
        assert set(seen) == box_sizes and tuple(GRID) not in box_sizes
