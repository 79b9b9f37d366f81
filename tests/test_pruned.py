"""UNet++ L1-L4: the pruned network is the full network's X(0,k) deep-supervision head."""

from __future__ import annotations

import functools
import json

import nibabel as nib
import numpy as np
import pytest
import torch
from data_files import volume_and_mask, write_nifti

import strokeseg
from strokeseg.data.intensity import normalize
from strokeseg.data.io import load_volume
from strokeseg.data.slices import from_slices, to_slices
from strokeseg.models.pruned import PrunedUNetPlusPlus, needed_nodes


@functools.lru_cache
def trained_like(name: str = "unetpp_mtl") -> torch.nn.Module:
    """A deep-supervision UNet++ with BatchNorm statistics moved off their initial values
    (shared between tests: ``deploy`` copies it)."""
    torch.manual_seed(0)
    model = strokeseg.create_model(name, width=0.125, norm="batch", deep_supervision=True)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(2, 1, 128, 128))  # LFFGM needs 128x128
    return model


def full_grid_head(model: torch.nn.Module, x: torch.Tensor, level: int) -> torch.Tensor:
    """The X(0, level) head computed through the whole (unpruned) network."""
    backbone = model.inference_network() if hasattr(model, "inference_network") else model
    backbone.eval()
    with torch.inference_mode():
        grid = backbone.grid(x)
        if level == 4:
            return backbone.head(grid[0][4])
        return backbone.ds_heads[level - 1](grid[0][level])


@pytest.mark.parametrize("level", [1, 2, 3])
@pytest.mark.parametrize("name", ["unetpp", "unetpp_mtl"])
def test_pruned_output_is_the_x0k_head(name, level):
    model = trained_like(name)
    x = torch.randn(2, 1, 48, 64)
    pruned = strokeseg.deploy(model, level=level)
    with torch.inference_mode():
        got = pruned(x)
    torch.testing.assert_close(got, full_grid_head(model, x, level), rtol=0, atol=1e-6)


@pytest.mark.parametrize("level", [1, 2, 3])
def test_pruned_runs_only_the_nodes_it_needs(level):
    pruned = strokeseg.deploy(trained_like(), level=level)
    ran: list[str] = []
    for name, node in pruned.nodes.items():
        node.register_forward_hook(lambda *_, name=name: ran.append(name))
    with torch.inference_mode():
        pruned(torch.randn(1, 1, 32, 32))
    expected = {f"x{i}_{j}" for i in range(5) for j in range(5) if i + j <= level}
    assert sorted(ran) == sorted(expected)
    assert len(needed_nodes(level)) == (level + 1) * (level + 2) // 2
    full = sum(p.numel() for p in strokeseg.deploy(trained_like()).parameters())
    assert sum(p.numel() for p in pruned.parameters()) < full


def test_level_4_is_exactly_the_plain_deployed_unetpp():
    model = trained_like()
    deployed, level4 = strokeseg.deploy(model), strokeseg.deploy(model, level=4)
    assert type(level4) is type(deployed) and level4.ds_heads is None
    assert level4.state_dict().keys() == deployed.state_dict().keys()
    x = torch.randn(1, 1, 32, 48)
    with torch.inference_mode():
        torch.testing.assert_close(level4(x), full_grid_head(model, x, 4), rtol=0, atol=0)


def test_pruning_refused_without_deep_supervision_or_for_other_models():
    plain = strokeseg.create_model("unetpp", width=0.125)
    with pytest.raises(ValueError, match="deep_supervision"):
        strokeseg.deploy(plain, level=2)
    with pytest.raises(ValueError, match="UNet\\+\\+ only"):
        strokeseg.deploy(strokeseg.create_model("unet", width=0.125), level=2)
    with pytest.raises(ValueError, match="must be 1, 2 or 3"):
        PrunedUNetPlusPlus(trained_like().backbone, 5)


def write_checkpoint(path, model: torch.nn.Module, name: str, kwargs: dict):
    """``model`` as training writes a checkpoint (description + state dict)."""
    meta = {
        "model_name": name,
        "model_kwargs": kwargs,
        "data": {"layout": "folders", "modality": "mri", "window": "brain"},
        "config": {},
    }
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "strokeseg": meta}, path)
    return path


def level_logits(checkpoint, volume, level: int) -> np.ndarray:
    """The logits of ``deploy(model, level)`` by hand: the checkpoint's model rebuilt
    with the Python API, run on the normalised, zero-padded axial slices."""
    saved = torch.load(checkpoint, weights_only=True)
    meta = saved["strokeseg"]
    model = strokeseg.create_model(meta["model_name"], **meta["model_kwargs"])
    model.load_state_dict({k[len("model.") :]: v for k, v in saved["state_dict"].items()})
    network = strokeseg.deploy(model, level=level)
    slices = to_slices(normalize(volume.data, "mri", "brain"), pad=True)
    with torch.inference_mode():
        logits = network(torch.from_numpy(slices[:, None]).float())[:, 0].double().numpy()
    return from_slices(logits, volume.data.shape)


def test_predict_and_evaluate_level_run_the_pruned_unetpp(tmp_path, cli):
    kwargs = {"width": 0.125, "norm": "batch", "deep_supervision": True}
    checkpoint = write_checkpoint(tmp_path / "ds.ckpt", trained_like(), "unetpp_mtl", kwargs)
    image, truth = volume_and_mask(3)
    scan = write_nifti(tmp_path / "data" / "images" / "case0.nii.gz", image)
    write_nifti(tmp_path / "data" / "masks" / "case0.nii.gz", truth)
    volume = load_volume(scan)
    written = {}
    for level in (2, 4):
        out = tmp_path / f"out{level}"
        result = cli("predict", "-i", scan, "-o", out, "--checkpoint", checkpoint,
                     "--level", level, "--runtime", "eager")  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        written[level] = np.asarray(nib.load(out / "case0_mask.nii.gz").dataobj)
    expected = (level_logits(checkpoint, volume, 2) >= 0).astype(np.uint8)
    assert 0 < expected.sum() < expected.size
    np.testing.assert_array_equal(written[2], expected)
    assert (written[2] != written[4]).any()  # level 4 is the whole UNet++, another answer
    # evaluate --level 2 scores the same pruned masks
    result = cli("evaluate", "--checkpoint", checkpoint, "--data", tmp_path / "data",
                 "--subjects", "all", "--level", "2", "--out", tmp_path / "eval")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text(encoding="utf-8"))
    dice = 2 * (written[2] & truth).sum() / (written[2].sum() + truth.sum())
    assert summary["dice_mean"] == pytest.approx(dice)


def test_level_on_a_checkpoint_that_is_no_unetpp_is_one_line(tmp_path, cli):
    unet = strokeseg.create_model("unet", width=0.125)
    checkpoint = write_checkpoint(tmp_path / "unet.ckpt", unet, "unet", {"width": 0.125})
    scan = write_nifti(tmp_path / "scan.nii.gz", volume_and_mask(0)[0])
    result = cli("predict", "-i", scan, "-o", tmp_path / "out", "--checkpoint", checkpoint,
                 "--level", "2")  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"strokeseg predict: error: {checkpoint}: pruning levels are for UNet++ only, not UNet"
    )
    assert not (tmp_path / "out").exists()
