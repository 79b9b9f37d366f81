"""The paper's configs are the paper's recipe (Sec. 3.2): fp32, a global batch of 8 shared out
among DDP processes, raw masks at p >= 0.5, each baseline's official L2; the ``cpu`` profile
keeps its post-processing and says so in the table."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from strokeseg.data.layouts import find_dataset
from strokeseg.errors import StrokesegError
from strokeseg.jobs.benchmark_rows import CONTROLS, profile_overrides
from strokeseg.reports.tables import markdown
from strokeseg.training.config import PACKAGED_CONFIGS, load_config
from strokeseg.training.datamodule import SliceDataModule, per_process_batch
from strokeseg.training.run import precision, set_float32

PAPER_CONFIGS = sorted(
    str(p.relative_to(PACKAGED_CONFIGS)).removesuffix(".yaml")
    for folder in ("atlas", "ct")
    for p in (PACKAGED_CONFIGS / folder).glob("*.yaml")
)

OFFICIAL_L2 = {"xnet": 1e-5, "unetpp": 1e-4}
"""The kernel regularisers of the official Keras code (BASELINES.md): X-Net's conv2d_bn_relu,
depthwise and FSM convs l2(1e-5), UNet++'s standard_unit l2(1e-4) (the multi-task rows share
its backbone); CLCI-Net's custom_layer.py sets its regulariser to None, and the other
baselines' official models carry none."""


def official_l2(model: str) -> float:
    return OFFICIAL_L2["unetpp"] if model.startswith("unetpp") else OFFICIAL_L2.get(model, 0.0)


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_a_paper_config_trains_the_papers_recipe(name, monkeypatch):
    config = load_config(name)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert precision(config) == "32-true"  # fp32 where a GPU would default to 16-mixed
    assert config.postprocess.fit is False
    optim = config.optim
    assert (optim.batch_size, optim.lr, optim.epochs, optim.schedule) == (8, 1e-3, 100, "constant")
    assert optim.weight_decay == 0 and optim.l2 == official_l2(config.model.name)
    loss = config.loss
    assert (loss.gamma, loss.lam, loss.delta, loss.alpha, loss.beta) == (1, 1, 10, 1, 1)
    assert (loss.delta_warmup, loss.dice) == (0, "batch")  # delta = 10 from the first step
    if not name.endswith(tuple(CONTROLS[2])):
        assert loss.boundary_weight == 0
    assert config.model.kwargs == {} and config.model.output_prior is None  # full width, as coded
    data = config.data
    assert data.split == ([120, 40, 60] if name.startswith("atlas/") else [40, 0, 5])
    assert (data.patch_size, data.lesion_fraction, data.augment) == (None, None, False)
    assert (data.context_slices, data.mirror, data.zero_outside_crop) == (0, False, False)


def test_ablation_configs_on_atlas_are_named_for_table_3():
    atlas = [n for n in PAPER_CONFIGS if n.startswith("atlas/")]
    assert atlas and all(n.startswith("atlas/table3_") for n in atlas)
    rows = ["unetpp", "unetpp_edge", "unetpp_lffgm", "unetpp_mtl", *CONTROLS[2]]
    assert {n for n in PAPER_CONFIGS if n.startswith("ct/table2_")} == {
        f"ct/table2_{m}" for m in rows
    }


def test_the_cpu_profile_keeps_post_processing_and_the_demos_precision():
    config = load_config("atlas/table3_unetpp_mtl", profile_overrides("cpu", "unetpp_mtl"))
    assert config.postprocess.fit is True and config.postprocess.objective == "dice_f1"
    assert config.trainer.precision is None  # the demo's: 16-mixed on GPU, 32-true on CPU


def test_the_table_says_whether_its_masks_were_post_processed():
    run = {
        "model": "unetpp",
        "seed": 0,
        "dice_mean": 0.5,
        "params": 1,
        "inference_ms": 1.0,
        "subjects_raw": {"s": {"dice": 0.5}},
        "subjects": {"s": {"hd95_mm": 7.0}},
    }
    assert "masks at p >= 0.5 (no post-processing)" in markdown(2, "paper", [run])
    cpu = markdown(2, "cpu", [run]).splitlines()[0]
    assert "Not the paper's recipe" in cpu and "post-processed by the rule" in cpu


def test_the_global_batch_is_shared_out_among_processes():
    assert [per_process_batch(8, n) for n in (1, 2, 4, 8)] == [8, 4, 2, 1]
    with pytest.raises(StrokesegError, match=r"optim.batch_size 8 is the global batch.* 3 proc"):
        per_process_batch(8, 3)


def test_each_process_loads_its_share_of_the_papers_batch(tiny_dataset, tmp_path):
    config = load_config("atlas/table3_unetpp_mtl", ["data.split=[4, 2, 0]"])
    dataset = find_dataset(tiny_dataset)
    ids = sorted(s.id for s in dataset.subjects)
    split = {"train": ids[:4], "val": ids[4:], "test": []}
    data = SliceDataModule(dataset, split, tmp_path / "cache", config)
    data.setup("fit")
    assert data.train_dataloader().batch_size == 8  # one process: the whole batch
    data.trainer = SimpleNamespace(world_size=2)
    assert data.train_dataloader().batch_size == 4
    assert data.val_dataloader().batch_size == 4


def test_a_batch_that_does_not_divide_is_refused_before_anything_is_written(
    tiny_dataset, tmp_path, cli
):
    ddp = ["trainer.accelerator=cpu", "trainer.devices=3", "trainer.strategy=ddp"]
    sets = [arg for item in ddp for arg in ("--set", item)]
    out = tmp_path / "run"
    result = cli("train", "--config", "tiny", "--data", tiny_dataset, "--out", out, *sets)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "optim.batch_size 4 is the global batch" in result.stderr
    assert not out.exists()


def test_fp32_means_no_tf32_on_the_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    matmul = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")  # TF32 allowed for matrix products
        set_float32(load_config("demo"))  # 16-mixed on a GPU: PyTorch's settings stay
        assert torch.backends.cudnn.allow_tf32
        assert torch.get_float32_matmul_precision() == "high"
        set_float32(load_config("atlas/table3_unetpp_mtl"))
        assert not torch.backends.cudnn.allow_tf32
        assert torch.get_float32_matmul_precision() == "highest"
    finally:
        torch.set_float32_matmul_precision(matmul)
