"""The benchmark table's arithmetic, on hand-made run records."""

from __future__ import annotations

import pytest

from strokeseg.errors import StrokesegError
from strokeseg.evaluation import design
from strokeseg.jobs.benchmark_rows import profile_overrides, row_configs
from strokeseg.reports.tables import (
    forest_figure,
    markdown,
    merge_folds,
    paired_markdown,
    paired_statistics,
)
from strokeseg.training.config import PACKAGED_CONFIGS, load_config


def record(model: str, seed: int, dice: float) -> dict:
    return {
        "model": model,
        "seed": seed,
        "dice_mean": dice,
        "iou_mean": dice / 2,
        "dice_pooled": dice,
        "lesion_f1_mean": 0.5,
        "abs_volume_difference_ml_mean": 1.25,
        "abs_volume_difference_voxels_mean": 1250.0,
        "hd95_mm_mean": 7.0 + seed,
        "params": 1000,
        "inference_ms": 2.0 + seed,
        "wall_seconds": 60.0,
        "subjects_raw": {"s": {"dice": dice / 2}},  # the raw primary endpoint
        "subjects": {"s": {"hd95_mm": 7.0 + seed}},
    }


def test_table_reports_mean_std_and_the_difference_paired_by_seed():
    runs = [
        record("unetpp", 0, 0.25),
        record("unetpp", 1, 0.75),
        record("unetpp_mtl", 0, 0.5),
        record("unetpp_mtl", 1, 0.5),
    ]
    rows = markdown(2, "cpu", runs).splitlines()
    # raw (primary) Dice: unetpp 0.125 and 0.375, mean 0.25, sample std 0.125 * sqrt(2) =
    # 0.1768; mtl 0.25 ± 0; paired raw differences +0.125 and -0.125: mean 0, std 0.1768.
    # Post-processed Dice: unetpp mean 0.5, std 0.3536; median latency of 2 and 3 ms;
    # lesion F1, |dV| and HD95 (7 and 8 mm: mean 7.5, sample std 0.7071) beside Dice and IoU
    middle = "0.5000 ± 0.0000 | 1.2500 ± 0.0000 | 1250.0000 ± 0.0000 | 7.5000 ± 0.7071"
    assert (
        f"| unetpp | 0.2500 ± 0.1768 | 0.5000 ± 0.3536 | 0.2500 ± 0.1768 | {middle} "
        "| 0.5000 ± 0.3536 |  | 1,000 | 2.5 |" in rows
    )
    assert (
        f"| unetpp_mtl | 0.2500 ± 0.0000 | 0.5000 ± 0.0000 | 0.2500 ± 0.0000 | {middle} "
        "| 0.5000 ± 0.0000 | +0.0000 ± 0.1768 | 1,000 | 2.5 |"
    ) in rows
    assert "Primary endpoint (fixed in advance): raw Dice" in rows[0]
    assert "HD95 over the 2 subject-runs where every row has both masks" in rows[0]
    assert "2 seed(s), 4 runs, 4 min" in rows[0]


def test_a_single_seed_has_no_spread():
    table = markdown(2, "cpu", [record("unetpp", 0, 0.25), record("unetpp_mtl", 0, 0.5)])
    assert (
        "| unetpp_mtl | 0.2500 | 0.5000 | 0.2500 | 0.5000 | 1.2500 | 1250.0000 | 7.0000 | 0.5000 "
        "| +0.1250 | 1,000 |" in table
    )


def test_cpu_profile_is_the_demo_setting_on_every_row():
    demo = load_config("demo")
    for model, config_file in row_configs(2, "mri") + row_configs(3, "mri"):
        config = load_config(config_file, profile_overrides("cpu", model))
        assert config.model.name == model  # the row keeps its model
        assert (config.data, config.optim, config.trainer) == (demo.data, demo.optim, demo.trainer)
        assert config.model.kwargs["width"] == demo.model.kwargs["width"]
        unetpp = model.startswith("unetpp")
        assert config.model.kwargs.get("norm") == ("batch" if unetpp else None)
        assert config.model.kwargs.get("padding") == ("replicate" if unetpp else None)
        # every row but Swin-Unet (no bias on its output layer) starts at the demo's prior
        expected_prior = None if model == "swin_unet" else demo.model.output_prior
        assert config.model.output_prior == expected_prior
    assert profile_overrides("paper", "unetpp") == []


def subject_record(model: str, seed: int, dice: dict[str, float], fold: int = 0) -> dict:
    subjects = {
        s: {
            "dice": d,
            "iou": d / (2 - d),
            "lesion_f1": 1.0,
            "abs_volume_difference_ml": 0.5,
            "abs_volume_difference_voxels": 500.0,
            "hd95_mm": float("nan") if d == 0 else 4.0,
            "gt_volume_ml": VOLUMES[s],
            "pred_volume_ml": VOLUMES[s],
        }
        for s, d in dice.items()
    }
    return {
        "model": model,
        "seed": seed,
        "folds": 2,
        "fold": fold,
        "params": 10,
        "connectivity": 26,
        "metrics": "strokeseg",
        "inference_ms": 1.0 + fold,
        "wall_seconds": 30.0,
        "subjects": subjects,
        "subjects_raw": subjects,
    }


VOLUMES = {"a": 0.5, "b": 5.0, "c": 20.0, "d": 0.2}


def test_folds_merge_into_one_record_per_row_and_seed():
    merged = merge_folds(
        [
            subject_record("unetpp", 0, {"a": 0.2, "b": 0.4}, fold=0),
            subject_record("unetpp", 0, {"c": 0.6, "d": 0.0}, fold=1),
        ]
    )
    assert merged["n_subjects"] == 4
    assert merged["dice_mean"] == pytest.approx(0.3)
    assert merged["hd95_mm_mean"] == 4.0 and merged["hd95_mm_n"] == 3  # NaN left out
    # pooled Dice weighted by |P| + |G| (2 x volume): (0.2*1 + 0.4*10 + 0.6*40 + 0) / 51.4
    assert merged["dice_pooled"] == pytest.approx((0.2 + 4.0 + 24.0) / 51.4)
    assert merged["wall_seconds"] == 60.0 and merged["inference_ms"] == 1.5
    assert merged["subject_folds"] == {"a": 0, "b": 0, "c": 1, "d": 1}
    assert merged["subjects_raw"]["c"]["dice"] == 0.6


def test_paired_statistics_by_training_run_with_hand_values():
    runs = [
        subject_record("unetpp", 0, {"a": 0.2, "b": 0.4, "c": 0.6, "d": 0.0}),
        subject_record("unetpp", 1, {"a": 0.4, "b": 0.4, "c": 0.6, "d": 0.2}),
        subject_record("unetpp_mtl", 0, {"a": 0.5, "b": 0.5, "c": 0.7, "d": 0.1}),
        subject_record("unetpp_mtl", 1, {"a": 0.5, "b": 0.3, "c": 0.7, "d": 0.1}),
    ]
    paired = paired_statistics(runs)
    assert paired["reference"] == "unetpp"
    assert paired["primary"]["endpoint"].startswith("raw per-subject 3D Dice")
    mtl = paired["primary"]["rows"]["unetpp_mtl"]
    # one test split, two seeds: two runs. Differences seed 0: +0.3 +0.1 +0.1 +0.1 (mean
    # 0.15), seed 1: +0.1 -0.1 +0.1 -0.1 (mean 0): overall 0.075 over 8 pairs
    c = mtl["all"]
    assert (c.n_runs, c.n_pairs, c.n_subjects) == (2, 8, 4)
    assert c.mean_difference == pytest.approx(0.075)
    assert [d for *_, d in c.runs] == pytest.approx([0.15, 0.0])
    # run-level t: mean 0.075, sd 0.075 * sqrt(2), t = 1 on 1 df (Cauchy): p = 0.5
    assert c.p_runs == pytest.approx(0.5)
    # subject means over seeds a +0.2, b 0, c +0.1, d 0: zeros dropped, 2 positives, p = 2/4
    assert c.p_subjects == pytest.approx(0.5)
    assert c.p_holm == c.p_cluster  # one row compared: nothing to adjust
    assert {k: v.n_pairs for k, v in mtl.items()} == {
        "all": 8,
        "< 1 mL": 4,
        "1-10 mL": 2,
        "> 10 mL": 2,
    }
    assert mtl["> 10 mL"].mean_difference == pytest.approx(0.1)
    assert [e["endpoint"] for e in paired["secondary"]] == [e.label for e in design.SECONDARY]
    text = paired_markdown(paired)
    assert "| unetpp_mtl | 2 | 8 | +0.0750 [" in text
    assert "0/0: +0.1500, 1/0: " in text
    # the forest plot: one line per row and per stratum, top to bottom, intervals as drawn
    axes = forest_figure(2, paired).axes[0]
    labels = [t.get_text() for t in axes.get_yticklabels()]
    assert labels == ["unetpp_mtl", "stratum < 1 mL", "stratum 1-10 mL", "stratum > 10 mL"]
    top_line = axes.lines[0].get_xdata()
    assert list(top_line) == pytest.approx([c.ci_low, c.ci_high])
    with pytest.raises(StrokesegError, match="different"):
        paired_statistics([*runs, subject_record("unetpp_xtra", 0, {"a": 0.1})])


def test_rows_pick_table_rows_with_the_reference_first_and_borrow_configs():
    rows = row_configs(3, "mri", ["unetpp_mtl", "unet", "unetpp"])
    assert [m for m, _ in rows] == ["unetpp", "unet", "unetpp_mtl"]
    assert rows[0][1] == PACKAGED_CONFIGS / "atlas" / "table3_unetpp.yaml"  # not a Table 3 row
    assert rows[1][1] == PACKAGED_CONFIGS / "atlas" / "table3_unet.yaml"
    assert [m for m, _ in row_configs(1, "ct", ["unetpp_mtl", "unet"])] == ["unet", "unetpp_mtl"]
    with pytest.raises(StrokesegError, match="--rows nope"):
        row_configs(2, "ct", ["nope"])
