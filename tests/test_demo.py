"""`strokeseg demo`: its settings, and end to end at smoke-test size (slow: ATLAS-sized volumes)."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import SHORT_EPOCH


@pytest.mark.slow
def test_demo_writes_a_report(tmp_path, cli):
    out = tmp_path / "demo"
    args = (
        "demo",
        "--out",
        out,
        "--subjects",
        "4",
        *SHORT_EPOCH,
        "--set",
        "model.kwargs.width=0.125",
    )
    result = cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "research tool, not a medical device" in report
    assert "| metric | raw | post-processed |" in report
    summary = json.loads((out / "evaluation" / "summary.json").read_text(encoding="utf-8"))
    for label, key in (("Dice, per-subject 3D (headline)", "dice"), ("lesion-wise F1", "lesion_f1"),
                       ("false-positive volume (mL)", "false_positive_ml")):  # fmt: skip
        raw, final = summary["raw"][f"{key}_mean"], summary[f"{key}_mean"]
        assert f"| {label} | {raw:.3f} ± " in report and f"| {final:.3f} ± " in report
    assert "post-processing (not in the paper), chosen on the 1 validation subjects" in report
    for path in ("run/best.ckpt", "run/curves.png", "evaluation/summary.json"):
        assert (out / path).is_file(), path
    assert len(list((out / "predict").glob("*_mask.nii.gz"))) == 1
    with (out / "evaluation" / "per_subject.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):  # one report line per test subject, with its Dice
            assert f"| {row['subject']} | {float(row['gt_volume_ml']):.2f} |" in report
            assert f"| {float(row['dice']):.3f} |" in report
            assert f"| {float(row['false_positive_ml']):.2f} |" in report
    refused = cli(*args)
    assert refused.returncode == 1 and "not empty" in refused.stderr


def test_demo_validates_once_after_the_last_epoch_unless_told_otherwise():
    from strokeseg.jobs.demo import demo_config

    shipped = demo_config([])
    assert shipped.trainer.check_val_every_n_epoch == shipped.optim.epochs == 8
    assert shipped.data.split == [0.65, 0.15, 0.2]
    assert demo_config(["optim.epochs=3"]).trainer.check_val_every_n_epoch == 3
    told = demo_config(["optim.epochs=6", "trainer.check_val_every_n_epoch=2"])
    assert told.trainer.check_val_every_n_epoch == 2
    assert demo_config(["data.split=[0.5, 0.25, 0.25]"]).data.split == [0.5, 0.25, 0.25]
