"""``train`` as a user shortens it: batch limits read as Lightning reads them, and a run whose
epochs are no multiple of the validation interval still validates its last epoch."""

from __future__ import annotations

import csv
from collections import Counter

import yaml

from strokeseg.training.config import load_config


def logged(run) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_limit_train_batches_1_trains_one_batch_per_epoch(tiny_dataset, tmp_path, cli):
    run = tmp_path / "run"
    result = cli("train", "--config", "tiny", "--data", tiny_dataset, "--out", run,
                 "--set", "trainer.limit_train_batches=1", "--set", "trainer.limit_val_batches=1",
                 "--set", "optim.epochs=2")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    steps = Counter(r["epoch"] for r in logged(run) if r["train/loss"])  # logged every step
    assert steps == {"0": 1, "1": 1}
    saved = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))["trainer"]
    assert saved["limit_train_batches"] == 1 and type(saved["limit_train_batches"]) is int
    assert load_config(run / "config.yaml").trainer.limit_train_batches == 1
    whole = load_config("tiny", ["trainer.limit_train_batches=1.0"]).trainer.limit_train_batches
    assert whole == 1.0 and type(whole) is float  # a float is a fraction: the whole epoch


def test_epochs_no_multiple_of_the_interval_validate_the_last_epoch(tiny_dataset, tmp_path, cli):
    import torch

    run = tmp_path / "run"
    result = cli("train", "--config", "tiny", "--data", tiny_dataset, "--out", run,
                 "--set", "optim.epochs=3", "--set", "trainer.check_val_every_n_epoch=2",
                 "--set", "trainer.limit_train_batches=1", "--set", "trainer.limit_val_batches=1",
                 )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    validated = sorted(int(r["epoch"]) for r in logged(run) if r["val/dice_subject"])
    assert validated == [1, 2]  # the second epoch (the interval) and the last
    last = torch.load(run / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 2 and (run / "best.ckpt").is_file()
    best = torch.load(run / "best.ckpt", map_location="cpu", weights_only=False)
    scores = {int(r["epoch"]): float(r["val/dice_subject"]) for r in logged(run)
              if r["val/dice_subject"]}  # fmt: skip
    assert best["epoch"] == max(scores, key=lambda e: (scores[e], -e))


def test_a_width_that_leaves_no_filters_is_refused_before_anything_is_written(
    tiny_dataset, tmp_path, cli
):
    for width, problem in [("0", "expected a number > 0"), ("0.01", "first layer 1 filter(s)")]:
        result = cli("train", "--config", "tiny", "--data", tiny_dataset, "--out",
                     tmp_path / "run", "--set", f"model.kwargs.width={width}")  # fmt: skip
        assert result.returncode == 1 and "Traceback" not in result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert f"model.kwargs: width {width}" in line and problem in line
        assert not (tmp_path / "run").exists()
    # the smallest width the rule allows: 4 of the UNet++'s 32 first-layer filters
    assert "width >= 0.125" in line


def test_the_post_processing_fit_runs_on_global_rank_zero_only(tmp_path):
    from types import SimpleNamespace

    import pytest

    from strokeseg.errors import StrokesegError
    from strokeseg.jobs.train import FitPostprocess

    fit = FitPostprocess(load_config("tiny"), tmp_path / "data", tmp_path / "run")
    fit.on_fit_end(SimpleNamespace(is_global_zero=False), None)  # another rank: nothing read
    assert fit.record is None and fit.seconds == 0.0
    with pytest.raises(StrokesegError, match="split.json: cannot read split"):
        fit.on_fit_end(SimpleNamespace(is_global_zero=True), None)  # rank zero reads the run
