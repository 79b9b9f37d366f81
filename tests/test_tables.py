"""The benchmark table's arithmetic, on hand-made run records."""

from __future__ import annotations

from strokeseg.tables import markdown, profile_overrides, row_configs
from strokeseg.training.config import load_config


def record(model: str, seed: int, dice: float) -> dict:
    return {
        "model": model,
        "seed": seed,
        "dice_mean": dice,
        "iou_mean": dice / 2,
        "dice_pooled": dice,
        "params": 1000,
        "inference_ms": 2.0 + seed,
        "wall_seconds": 60.0,
    }


def test_table_reports_mean_std_and_the_difference_paired_by_seed():
    runs = [
        record("unetpp", 0, 0.25),
        record("unetpp", 1, 0.75),
        record("unetpp_mtl", 0, 0.5),
        record("unetpp_mtl", 1, 0.5),
    ]
    rows = markdown(2, "cpu", runs).splitlines()
    # unetpp: mean 0.5, sample std 0.25 * sqrt(2) = 0.3536; mtl: 0.5 ± 0;
    # paired differences +0.25 and -0.25: mean 0, std 0.3536; median latency of 2 and 3 ms
    assert (
        "| unetpp | 0.5000 ± 0.3536 | 0.2500 ± 0.1768 | 0.5000 ± 0.3536 |  | 1,000 | 2.5 |" in rows
    )
    assert (
        "| unetpp_mtl | 0.5000 ± 0.0000 | 0.2500 ± 0.0000 | 0.5000 ± 0.0000 | +0.0000 ± 0.3536 "
        "| 1,000 | 2.5 |"
    ) in rows
    assert "2 seed(s), 4 runs, 4 min" in rows[0]


def test_a_single_seed_has_no_spread():
    table = markdown(2, "cpu", [record("unetpp", 0, 0.25), record("unetpp_mtl", 0, 0.5)])
    assert "| unetpp_mtl | 0.5000 | 0.2500 | 0.5000 | +0.2500 |" in table


def test_cpu_profile_is_the_demo_setting_on_every_row():
    demo = load_config("demo")
    for model, config_file in row_configs(2, "mri") + row_configs(3, "mri"):
        config = load_config(config_file, profile_overrides("cpu", model))
        assert config.model.name == model  # the row keeps its model
        assert (config.data, config.optim, config.trainer) == (demo.data, demo.optim, demo.trainer)
        assert config.model.kwargs["width"] == demo.model.kwargs["width"]
        assert config.model.kwargs.get("norm") == ("batch" if model.startswith("unetpp") else None)
        # every row but Swin-Unet (no bias on its output layer) starts at the demo's prior
        expected_prior = None if model == "swin_unet" else demo.model.output_prior
        assert config.model.output_prior == expected_prior
    assert profile_overrides("paper", "unetpp") == []
