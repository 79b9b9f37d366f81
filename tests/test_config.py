"""Typed configs, shipped configs per table row, and user-provided initial weights."""

from __future__ import annotations

import math

import pytest
import torch

import strokeseg
from strokeseg.errors import StrokesegError
from strokeseg.models.weights import load_weights
from strokeseg.training.config import PACKAGED_CONFIGS, PRECISIONS, load_config
from strokeseg.training.module import SegmentationModule

SHIPPED = sorted(p.relative_to(PACKAGED_CONFIGS) for p in PACKAGED_CONFIGS.rglob("*.yaml"))


def test_defaults_are_the_papers_recipe():
    config = load_config(None)
    assert (config.optim.lr, config.optim.batch_size, config.optim.epochs) == (1e-3, 8, 100)
    assert (config.loss.gamma, config.loss.lam, config.loss.delta) == (1.0, 1.0, 10.0)
    assert (config.loss.alpha, config.loss.beta) == (1.0, 1.0)


def test_overrides_are_typed_and_nested(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "model:\n  name: unetpp\n  kwargs: {width: 0.5}\noptim: {epochs: 3}\n", encoding="utf-8"
    )
    config = load_config(path, ["optim.lr=1e-4", "model.kwargs.norm=batch", "seed=7"])
    assert config.optim.lr == pytest.approx(1e-4) and isinstance(config.optim.lr, float)
    assert config.model.kwargs == {"width": 0.5, "norm": "batch"}
    assert (config.optim.epochs, config.seed, config.model.name) == (3, 7, "unetpp")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optim.lrr=1"], "unknown key optim.lrr; did you mean optim.lr?"),
        (["optim.lr=fast"], "optim.lr 'fast': expected a number"),
        (["optim"], "expected key=value"),
        (["optim=3"], "optim 3: expected a section of keys"),
        (["optim.schedule=linear"], "optim.schedule 'linear': expected one of 'constant' or"),
        (["data.val_slice_stride=0"], "data.val_slice_stride 0: must be >= 1"),
        (["model.output_prior=1"], r"model.output_prior 1: must be < 1"),
        (["model.output_prior=abc"], r"model.output_prior 'abc': expected a number"),
        # each of these was accepted and failed late (or trained wrong)
        (["data.split=0.5"], "data.split 0.5: expected a list"),
        (["data.split=[0.5,0.2,0.2]"], "data.split: split fractions must add up to 1"),
        (["data.lesion_fraction=abc"], "data.lesion_fraction 'abc': expected a number"),
        (["optim.batch_size=0"], "optim.batch_size 0: must be >= 1"),
        (["optim.epochs=-1"], "optim.epochs -1: must be >= 1"),
        (["data.window=stroek"], "data.window 'stroek': expected one of 'brain' or 'stroke'"),
        (["trainer.precision=16"], "trainer.precision 16: expected one of 'transformer-engine'"),
        (["loss.edge_radius=0"], "loss.edge_radius 0: must be >= 1"),
        (["loss.edge_radius=1.5"], "loss.edge_radius 1.5: expected an integer"),
        (["data.patch_size=40"], "data.patch_size 40: must be a multiple of 16"),
        (["data.layout=bids"], "data.layout 'bids': expected one of 'atlas_r1.2'"),
        (["postprocess.thresholds=[0.5,1.5]"], r"postprocess.thresholds\[1\] 1.5: must be < 1"),
        (["trainer.limit_train_batches=2.5"], "whole number of batches"),
        (["trainer.limit_train_batches=0"], "limit_train_batches 0: expected a number of batches"),
        (["dat.window=brain"], "unknown key dat; did you mean data?"),
        (["seed=true"], "seed True: expected a number, not true/false"),
    ],
)
def test_bad_overrides_name_the_problem(overrides, message):
    with pytest.raises(StrokesegError, match=message) as error:
        load_config(None, overrides)
    assert "\n" not in str(error.value)


def test_precisions_are_lightnings_own_strings():
    import typing

    from lightning.fabric.connector import _PRECISION_INPUT_STR

    assert set(PRECISIONS) == set(typing.get_args(_PRECISION_INPUT_STR))


def test_a_bad_value_is_refused_before_the_run_folder_exists(tmp_path, cli):
    out = tmp_path / "run"
    result = cli("train", "--data", tmp_path, "--out", out, "--set", "loss.edge_radius=0")
    assert result.returncode == 1 and not out.exists()
    assert result.stderr == "strokeseg train: error: config: loss.edge_radius 0: must be >= 1\n"


def test_an_old_run_folder_config_still_resumes(tmp_path):
    """A config.yaml written before keys were added (and with Lightning limits stored as
    floats by the old loader) resolves to the same config as today's command line."""
    from strokeseg.training.run import same_config

    saved = tmp_path / "config.yaml"
    saved.write_text(
        "model: {name: unetpp, kwargs: {width: 0.25}, weights: null}\n"
        "loss: {gamma: 1.0, lam: 1.0, delta: 10.0, alpha: 1.0, beta: 1.0, smooth: 1.0e-05,"
        " edge_radius: 1}\n"
        "data: {layout: null, split: [3, 1, 1], stratify: false, window: brain}\n"
        "optim: {lr: 0.001, batch_size: 4, epochs: 2, weight_decay: 0.0}\n"
        "trainer: {accelerator: auto, devices: auto, limit_train_batches: 2.0}\n"
        "seed: 0\n",
        encoding="utf-8",
    )
    today = load_config(
        None,
        [
            "model.name=unetpp",
            "model.kwargs.width=0.25",
            "data.split=[3,1,1]",
            "optim.batch_size=4",
            "optim.epochs=2",
            "trainer.limit_train_batches=2",
        ],
    )
    assert today.trainer.limit_train_batches == 2 and same_config(saved, today)
    assert not same_config(saved, load_config(None, ["optim.epochs=4"]))


def test_config_keeps_attribute_access_and_round_trips(tmp_path):
    from strokeseg.training.config import save_config

    config = load_config(None, ["data.window=stroke", "model.kwargs.width=0.5"])
    assert config.data.window == "stroke" and vars(config.loss)["edge_radius"] == 1
    save_config(config, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml").to_dict() == config.to_dict()
    with pytest.raises(ValueError):  # validated on assignment as well
        config.optim.batch_size = 0


def test_missing_and_broken_config_files(tmp_path):
    with pytest.raises(StrokesegError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n", encoding="utf-8")
    with pytest.raises(StrokesegError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(StrokesegError, match="a folder, not a config file"):
        load_config(tmp_path)


def test_a_folder_named_like_a_shipped_config_does_not_shadow_it(tmp_path, monkeypatch):
    # after `make demo`, the repository root holds a demo/ folder: `strokeseg demo --out OTHER`
    # run there must still read the shipped demo config
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    shipped = load_config(PACKAGED_CONFIGS / "demo.yaml").to_dict()
    assert load_config("demo").to_dict() == shipped


def test_there_is_a_config_for_every_row_of_tables_1_2_3():
    names = {str(p) for p in SHIPPED}
    for model in (
        "unet",
        "segnet",
        "attention_unet",
        "deeplabv3plus",
        "unetpp",
        "transunet",
        "swin_unet",
        "unetpp_mtl",
    ):
        assert f"ct/table1_{model}.yaml" in names
    for model in (
        "unet",
        "attention_unet",
        "deeplabv3plus",
        "xnet",
        "clcinet",
        "transunet",
        "swin_unet",
        "unetpp_mtl",
    ):
        assert f"atlas/table3_{model}.yaml" in names
    for model in ("unetpp", "unetpp_edge", "unetpp_lffgm", "unetpp_mtl"):
        assert f"ct/table2_{model}.yaml" in names  # the paper's Table 2 is on CT
        assert f"atlas/table3_{model}.yaml" in names  # the ablation on ATLAS, Table 3's recipe
    assert not [n for n in names if n.startswith("atlas/table2_")]


@pytest.mark.parametrize("name", [str(p) for p in SHIPPED])
def test_every_shipped_config_loads_and_names_a_registered_model(name):
    config = load_config(name)
    assert config.model.name in strokeseg.list_models()


def module_of(*overrides: str) -> SegmentationModule:
    """The training module of the default config with ``overrides``."""
    return SegmentationModule(load_config(None, list(overrides)))


def test_user_weights_initialise_a_model_and_a_multitask_backbone(tmp_path):
    source = strokeseg.create_model("unetpp", width=0.125)
    path = tmp_path / "weights.pt"
    torch.save(source.state_dict(), path)
    module = module_of("model.kwargs.width=0.125", f"model.weights={path}")
    loaded = module.model.backbone.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())
    plain = load_weights(strokeseg.create_model("unetpp", width=0.125), path)
    assert all(torch.equal(plain.state_dict()[k], v) for k, v in source.state_dict().items())


def test_weights_that_do_not_fit_are_refused(tmp_path):
    path = tmp_path / "w.pt"
    torch.save(strokeseg.create_model("unetpp", width=0.25).state_dict(), path)
    with pytest.raises(StrokesegError, match="do not fit"):
        load_weights(strokeseg.create_model("unetpp", width=0.125), path)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(StrokesegError, match="not a readable weights file"):
        load_weights(strokeseg.create_model("unetpp", width=0.125), tmp_path / "junk.pt")


def test_cosine_schedule_decays_the_lr_to_zero_over_the_run():
    module = module_of(
        "model.name=unetpp", "model.kwargs.width=0.125", "optim.lr=1e-3", "optim.schedule=cosine"
    )
    module.trainer = type("T", (), {"estimated_stepping_batches": 10})()
    setup = module.configure_optimizers()
    optimizer, scheduler = setup["optimizer"], setup["lr_scheduler"]["scheduler"]
    assert setup["lr_scheduler"]["interval"] == "step"
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    # lr_t = 1e-3 * (1 + cos(pi t / 10)) / 2, ending at 0
    expected = [1e-3 * (1 + math.cos(math.pi * t / 10)) / 2 for t in range(10)]
    assert lrs == pytest.approx(expected)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    plain = module_of("model.name=unetpp", "model.kwargs.width=0.125").configure_optimizers()
    assert isinstance(plain, torch.optim.Adam)


def test_output_prior_reaches_the_model_and_is_refused_without_an_output_bias():
    module = module_of("model.kwargs.width=0.125", "model.output_prior=0.2")
    # logit(0.2) = ln(0.25)
    assert torch.allclose(module.model.backbone.head.bias, torch.tensor(math.log(0.25)))
    with pytest.raises(ValueError, match="no bias"):
        module_of(
            "model.name=swin_unet",
            "model.kwargs.width=0.125",
            "model.kwargs.window_size=2",
            "model.output_prior=0.2",
        )


# --- Eq. 5 on or off by loss.laplacian ------------------------------------------------------

SMOOTH = 1e-5
# Hand-computed on an 8x8 slice whose only lesion pixel is (3, 3), all logits 0 (p = 0.5):
# CE = ln 2 everywhere; Dice of the mask 1 - (2 * 0.5 * 1 + s) / (0.5 * 64 + 1 + s); the edge
# target is the 3x3 block around the pixel, Dice 1 - (0.5 * 2 * 9 + s) / (32 + 9 + s); the
# Laplacian of p (zero padding) is -0.5 on the 24 non-corner border pixels and -1 on the 4
# corners, that of y is -4 at the pixel and 1 at its 4 neighbours: mean |difference| 24 / 64.
MASK = 1 - (1 + SMOOTH) / (33 + SMOOTH) + math.log(2)
EDGE = 1 - (9 + SMOOTH) / (41 + SMOOTH) + math.log(2)
LAP = 24 / 64
TABLE_2 = {  # the paper's ablation rows, Eq. 6 with (gamma, lambda, delta) = (1, 1, 10)
    "unetpp": MASK,
    "unetpp_edge": MASK + EDGE,
    "unetpp_lffgm": MASK + EDGE,
    "unetpp_mtl": MASK + EDGE + 10 * LAP,
}


def _row_loss(config) -> float:
    y = torch.zeros(1, 1, 8, 8)
    y[0, 0, 3, 3] = 1
    zeros = torch.zeros(1, 1, 8, 8)
    module = SegmentationModule(config)
    outputs = {"mask": zeros, "edge": zeros} if hasattr(module.model, "edge_head") else zeros
    return module.criterion(outputs, y)["loss"].item()


@pytest.mark.parametrize("table", ["ct/table2", "atlas/table3"])
@pytest.mark.parametrize("row", list(TABLE_2))
def test_each_table_2_config_trains_with_its_rows_loss(table, row):
    config = load_config(f"{table}_{row}", ["model.kwargs.width=0.125"])
    assert config.loss.laplacian == (row == "unetpp_mtl")  # the saved config says so
    assert _row_loss(config) == pytest.approx(TABLE_2[row], rel=1e-6)


def test_the_laplacian_loss_is_a_loss_setting_for_any_model():
    tiny = ["model.kwargs.width=0.125", "loss.laplacian=true"]
    without_edge = load_config("atlas/table3_unetpp", tiny)  # Eq. 5 without the edge branch
    assert _row_loss(without_edge) == pytest.approx(MASK + 10 * LAP, rel=1e-6)
    lffgm = load_config("atlas/table3_unetpp_lffgm", [*tiny, "loss.delta=4"])
    assert _row_loss(lffgm) == pytest.approx(MASK + EDGE + 4 * LAP, rel=1e-6)
    off = load_config(
        "atlas/table3_unetpp_mtl", ["model.kwargs.width=0.125", "loss.laplacian=false"]
    )
    assert _row_loss(off) == pytest.approx(MASK + EDGE, rel=1e-6)


def test_a_delta_that_eq_5_would_ignore_is_refused(tmp_path, cli):
    out = tmp_path / "run"
    args = ("train", "--data", tmp_path, "--out", out, "--set", "model.name=unetpp_lffgm")
    result = cli(*args, "--set", "loss.delta=5")
    assert result.returncode == 1 and not out.exists()
    assert result.stderr == (
        "strokeseg train: error: config: loss.delta 5: Eq. 5 (the Laplacian loss) is off for "
        "unetpp_lffgm; set loss.laplacian true to train with it\n"
    )
