"""End to end through the real command line: train (tiny) -> predict -> export, and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import nibabel as nib
import numpy as np
import onnxruntime
import pytest
import torch
from conftest import SHORT_EPOCH
from data_files import write_nifti

from strokeseg.inference.checkpoint import load_network, read_checkpoint

SHAPE = (64, 64, 6)


def blob_subject(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A noisy 'brain' with a dark spherical lesion: easy enough to learn in a few steps."""
    rng = np.random.default_rng(seed)
    image = rng.normal(100, 5, SHAPE).astype(np.float32)
    x, y, z = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    cx, cy = rng.integers(16, 48, 2)
    r = rng.integers(5, 10)
    mask = ((x - cx) ** 2 + (y - cy) ** 2 + (z - 3) ** 2 * 4 <= r**2).astype(np.uint8)
    image[mask == 1] -= 40
    return image, mask


@pytest.fixture(scope="module")
def dataset(tiny_dataset):
    return tiny_dataset


@pytest.fixture(scope="module")
def run(tiny_run):
    return tiny_run


def test_train_writes_a_complete_run_folder(run):
    for name in (
        "config.yaml",
        "split.json",
        "versions.json",
        "best.ckpt",
        "last.ckpt",
        "metrics.csv",
        "curves.png",
    ):
        assert (run / name).is_file(), name
    split = json.loads((run / "split.json").read_text(encoding="utf-8"))
    assert sorted(sum(split.values(), [])) == [f"case{i}" for i in range(6)]
    meta = read_checkpoint(run / "best.ckpt")["strokeseg"]
    assert meta["model_name"] == "unetpp_mtl"
    assert meta["model_kwargs"] == {"width": 0.125, "norm": "batch"}
    assert meta["data"]["preprocessing"]["modality"] == "mri"
    assert meta["data"]["slice_grid"] == [64, 64]  # the training batches' grid (inference/grid.py)


def test_checkpoint_rebuilds_the_deployed_network_without_training_code(run):
    network, _ = load_network(run / "best.ckpt")
    assert not hasattr(network, "lffgm")
    code = (
        "import sys; from strokeseg.inference.checkpoint import load_network; "
        f"load_network({str(run / 'best.ckpt')!r}); "
        "print(any(m.startswith('lightning') for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        check=True,
    )
    assert out.stdout.strip() == "False"


def test_predict_keeps_geometry_and_is_deterministic(run, dataset, tmp_path, cli):
    scan = dataset / "images" / "case0.nii.gz"
    first = cli("predict", "-i", scan, "-o", tmp_path / "a", "--checkpoint", run / "best.ckpt")
    assert first.returncode == 0, first.stderr
    second = cli("predict", "-i", scan, "-o", tmp_path / "b", "--checkpoint", run / "best.ckpt")
    assert second.returncode == 0, second.stderr
    a, b = tmp_path / "a" / "case0_mask.nii.gz", tmp_path / "b" / "case0_mask.nii.gz"
    assert a.read_bytes() == b.read_bytes()
    src, out = nib.load(scan), nib.load(a)
    assert out.shape == src.shape
    assert np.array_equal(out.affine, src.affine)
    assert out.get_data_dtype() == np.uint8
    assert set(np.unique(np.asarray(out.dataobj))) <= {0, 1}
    lines = (tmp_path / "a" / "lesions.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("scan,lesion_volume_ml,lesion_count,") and lines[1][:6] == "case0,"
    assert lines[0].endswith(",warnings")  # quality warnings (docs/reports.md)


def test_predict_never_overwrites_without_the_flag(run, dataset, tmp_path, cli):
    scan = dataset / "images" / "case1.nii.gz"
    args = ("predict", "-i", scan, "-o", tmp_path, "--checkpoint", run / "best.ckpt")
    assert cli(*args).returncode == 0
    before = (tmp_path / "case1_mask.nii.gz").stat().st_mtime_ns
    refused = cli(*args)
    assert refused.returncode == 1
    assert "already exists" in refused.stderr and "Traceback" not in refused.stderr
    assert (tmp_path / "case1_mask.nii.gz").stat().st_mtime_ns == before
    assert cli(*args, "--overwrite").returncode == 0


def test_predict_refuses_bad_scans_and_still_writes_the_good_ones(run, dataset, tmp_path, cli):
    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / "good.nii.gz").write_bytes((dataset / "images" / "case2.nii.gz").read_bytes())
    (scans / "broken.nii.gz").write_bytes(b"not a gzip file")
    result = cli("predict", "-i", scans, "-o", tmp_path / "out", "--checkpoint", run / "best.ckpt")
    assert result.returncode == 1
    assert "broken.nii.gz" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "out" / "good_mask.nii.gz").is_file()
    assert not (tmp_path / "out" / "broken_mask.nii.gz").exists()


def test_lps_and_ras_copies_of_a_scan_give_the_same_mask(run, dataset, tmp_path, cli):
    image = nib.load(dataset / "images" / "case3.nii.gz")
    data = np.asarray(image.dataobj)
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    lps_affine = image.affine @ np.array(
        [[-1, 0, 0, SHAPE[0] - 1], [0, -1, 0, SHAPE[1] - 1], [0, 0, 1, 0], [0, 0, 0, 1]]
    )
    assert np.allclose(lps_affine[:3, :3], flip[:3, :3] @ image.affine[:3, :3])
    write_nifti(tmp_path / "scans" / "ras.nii.gz", data, image.affine)
    write_nifti(tmp_path / "scans" / "lps.nii.gz", data[::-1, ::-1, :], lps_affine)
    result = cli(
        "predict", "-i", tmp_path / "scans", "-o", tmp_path / "o", "--checkpoint", run / "best.ckpt"
    )
    assert result.returncode == 0, result.stderr
    ras = np.asarray(nib.load(tmp_path / "o" / "ras_mask.nii.gz").dataobj)
    lps_img = nib.load(tmp_path / "o" / "lps_mask.nii.gz")
    assert np.array_equal(lps_img.affine, lps_affine)
    assert np.array_equal(np.asarray(lps_img.dataobj)[::-1, ::-1, :], ras)


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_export_matches_the_deployed_network(run, tmp_path, cli, suffix):
    target = tmp_path / f"model{suffix}"
    result = cli("export", "--checkpoint", run / "best.ckpt", "-o", target)
    assert result.returncode == 0, result.stderr
    network, _ = load_network(run / "best.ckpt")
    x = torch.randn(3, 1, 112, 48)
    with torch.inference_mode():
        expected = network(x).numpy()
    if suffix == ".onnx":
        session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
        got = session.run(None, {"image": x.numpy()})[0]
    else:
        got = torch.jit.load(str(target))(x).detach().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert cli("export", "--checkpoint", run / "best.ckpt", "-o", target).returncode == 1


def test_training_resumes_after_the_run_is_killed(dataset, tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "strokeseg.cli",
        "train",
        "--config",
        "tiny",
        "--data",
        str(dataset),
        "--out",
        str(out),
        "--set",
        "optim.epochs=8",
    ]
    process = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 300
    while not (out / "last.ckpt").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = torch.load(out / "last.ckpt", weights_only=True)["epoch"]
    assert killed_at < 7, "the run finished before it could be killed"
    resumed = subprocess.run(
        cmd, capture_output=True, encoding="utf-8", errors="replace", timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Restoring states from the checkpoint" in resumed.stderr + resumed.stdout
    assert torch.load(out / "last.ckpt", weights_only=True)["epoch"] == 7


def test_evaluate_a_checkpoint_agrees_with_predict_then_evaluate(run, dataset, tmp_path, cli):
    test_ids = json.loads((run / "split.json").read_text(encoding="utf-8"))["test"]
    scans, gts = tmp_path / "scans", tmp_path / "gt"
    scans.mkdir()
    gts.mkdir()
    for sid in test_ids:
        (scans / f"{sid}.nii.gz").write_bytes((dataset / "images" / f"{sid}.nii.gz").read_bytes())
        (gts / f"{sid}.nii.gz").write_bytes((dataset / "masks" / f"{sid}.nii.gz").read_bytes())
    ckpt = run / "best.ckpt"
    assert (
        cli("predict", "-i", scans, "-o", tmp_path / "pred", "--checkpoint", ckpt).returncode == 0
    )
    masks = cli(
        "evaluate",
        "--pred",
        tmp_path / "pred",
        "--gt",
        gts,
        "--out",
        tmp_path / "by_masks",
    )
    assert masks.returncode == 0, masks.stderr
    model = cli(
        "evaluate",
        "--checkpoint",
        ckpt,
        "--data",
        dataset,
        "--out",
        tmp_path / "by_model",
        "--compare",
        ckpt,
    )
    assert model.returncode == 0, model.stderr
    by_model = json.loads((tmp_path / "by_model" / "summary.json").read_text(encoding="utf-8"))
    by_masks = json.loads((tmp_path / "by_masks" / "summary.json").read_text(encoding="utf-8"))
    assert by_model["n_subjects"] == len(test_ids) == by_masks["n_subjects"]
    for key in (
        "dice_mean",
        "iou_mean",
        "dice_pooled",
        "iou_pooled",
        "lesion_f1_mean",
        "abs_volume_difference_ml_mean",
    ):
        assert by_model[key] == pytest.approx(by_masks[key], nan_ok=True), key
    assert (tmp_path / "by_model" / "per_subject.csv").is_file()
    assert (tmp_path / "by_model" / "fig2.png").is_file()
    assert len(list((tmp_path / "by_model" / "overlays").glob("*.png"))) == len(test_ids)


def test_benchmark_table_2_runs_every_ablation_row(dataset, tmp_path, cli):
    args = (
        "benchmark",
        "table",
        "--table",
        "2",
        "--data",
        dataset,
        "--out",
        tmp_path,
        "--profile",
        "cpu",
        "--set",
        "model.kwargs.width=0.125",
        *SHORT_EPOCH,
        "--set",
        "optim.batch_size=4",
        "--set",  # the blob scans are not on a symmetric template (test_mirror)
        "data.mirror=false",
    )
    result = cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads((tmp_path / "runs.json").read_text(encoding="utf-8"))
    assert [r["model"] for r in runs] == ["unetpp", "unetpp_edge", "unetpp_lffgm", "unetpp_mtl"]
    assert len({r["params"] for r in runs}) == 1, "every variant deploys to the same UNet++"
    assert all(0 <= r["dice_mean"] <= 1 and r["inference_ms"] > 0 for r in runs)
    table = (tmp_path / "table2.md").read_text(encoding="utf-8")
    assert all(f"| {r['model']} |" in table for r in runs)
    again = cli(*args)  # finished rows are re-used, not retrained
    assert (
        again.returncode == 0
        and json.loads((tmp_path / "runs.json").read_text(encoding="utf-8")) == runs
    )
    other = cli(*args, "--set", "optim.lr=0.01")  # never mixes results of another setting
    assert other.returncode == 1 and "holds a result for another setting" in other.stderr


def test_a_failed_predict_leaves_no_output_and_a_foreign_checkpoint_is_refused(run, tmp_path, cli):
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"\x1f\x8b truncated")
    result = cli("predict", "-i", broken, "-o", tmp_path / "out", "--checkpoint", run / "best.ckpt")
    assert result.returncode == 1 and "broken.nii.gz" in result.stderr
    assert not (tmp_path / "out").exists()
    foreign = cli("predict", "-i", broken, "-o", tmp_path / "out", "--checkpoint", broken)
    assert foreign.returncode == 1
    assert foreign.stderr.strip().endswith("plain data)") and "Traceback" not in foreign.stderr
    assert len(foreign.stderr.strip().splitlines()) == 1


def test_a_baseline_trains_through_the_cli(dataset, tmp_path, cli):
    config = tmp_path / "xnet.yaml"
    config.write_text(
        "model: {name: xnet, kwargs: {width: 0.125}}\n"
        "optim: {batch_size: 4, epochs: 1}\n"
        "trainer: {limit_train_batches: 2, limit_val_batches: 2}\n",
        encoding="utf-8",
    )
    result = cli("train", "--config", config, "--data", dataset, "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    meta = read_checkpoint(tmp_path / "run" / "best.ckpt")["strokeseg"]
    assert meta["model_name"] == "xnet"
    network, _ = load_network(tmp_path / "run" / "best.ckpt")
    with torch.inference_mode():
        assert network(torch.zeros(1, 1, 64, 64)).shape == (1, 1, 64, 64)


def test_without_validation_every_epoch_is_saved_and_old_run_folders_resume(dataset, tmp_path, cli):
    out = tmp_path / "run"
    args = ("train", "--config", "tiny", "--data", dataset, "--out", out)
    no_val = ("--set", "data.split=[4, 0, 2]", "--set", "trainer.check_val_every_n_epoch=2")
    result = cli(*args, *no_val)
    assert result.returncode == 0, result.stderr[-3000:]
    best = torch.load(out / "best.ckpt", weights_only=True)
    last = torch.load(out / "last.ckpt", weights_only=True)
    assert best["epoch"] == last["epoch"] == 1  # no validation: best is the last epoch
    # a config.yaml written before keys existed resolves to the same config: it resumes
    saved = out / "config.yaml"
    old = saved.read_text(encoding="utf-8")
    keys = ("  stratify: false\n", "  val_slice_stride: 1\n", "  schedule: constant\n")
    for key in (*keys, "  output_prior: null\n"):
        assert key in old
        old = old.replace(key, "")
    saved.write_text(old, encoding="utf-8")
    again = cli(*args, *no_val)
    assert again.returncode == 0, again.stderr[-3000:]
    other = cli(*args, *no_val, "--set", "optim.lr=0.01")
    assert other.returncode == 1 and "holds a run with a different config" in other.stderr


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (["model.name=swin_unet", "model.output_prior=0.01"], "its output layer has no bias"),
        (["model.kwargs.depth=3"], "unexpected keyword argument 'depth'"),
        (["model.name=unetpp_nope"], "unknown model 'unetpp_nope'"),
    ],
)
def test_a_model_that_cannot_be_built_is_refused_before_anything_is_written(
    dataset, tmp_path, cli, settings, message
):
    out = tmp_path / "run"
    sets = [item for setting in settings for item in ("--set", setting)]
    result = cli("train", "--data", dataset, "--out", out, *sets)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()
