"""Cross-validation through the real command line: a 2-fold x 2-row Table 2 at tiny size.

The benchmark tests are marked slow: 4 tiny trainings, 8 evaluations and 4 CLI starts take
about 1.5 min of CPU (more on a loaded machine).
"""

from __future__ import annotations

import json

import pytest

TINY = [
    "--set",
    "model.kwargs={width: 0.125, norm: batch}",
    "--set",
    "optim.batch_size=4",
    "--set",
    "optim.epochs=1",
    "--set",
    "trainer.limit_train_batches=2",
    "--set",
    "trainer.limit_val_batches=1",
    "--set",
    "data.split=[0.6, 0.2, 0.2]",
]
ROWS = ("unetpp", "unetpp_edge")  # LFFGM (unetpp_lffgm, _mtl) needs 128x128 slices
IDS = [f"case{i}" for i in range(8)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from conftest import blob_dataset

    return blob_dataset(tmp_path_factory.mktemp("cv_data"), len(IDS))


@pytest.fixture(scope="module")
def bench(dataset, tmp_path_factory):
    from conftest import run_cli

    out = tmp_path_factory.mktemp("cv_bench")
    args = ["benchmark", "table", "--table", "2", "--data", dataset, "--out", out, "--folds", "2"]
    args.append("--force")  # the paper profile at tiny size, on a machine without a GPU
    result = run_cli(*args, "--rows", ",".join(ROWS), *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, args


@pytest.mark.slow
def test_every_subject_is_tested_once_on_the_same_folds_in_every_row(bench):
    out, _ = bench
    folds = json.loads((out / "folds_seed0.json").read_text(encoding="utf-8"))["folds"]
    assert sorted(folds[0] + folds[1]) == IDS and abs(len(folds[0]) - len(folds[1])) <= 1
    for model in ROWS:
        tested = []
        for i in range(2):
            split = json.loads(
                (out / model / "seed0" / f"fold{i}" / "run" / "split.json").read_text("utf-8")
            )
            assert split["test"] == folds[i]  # the same folds for every row
            run = out / model / "seed0" / f"fold{i}" / "run"
            assert not (run / "cache").exists()  # a finished run's slice cache is deleted
            run_folds = out / model / "seed0" / f"fold{i}" / "run" / "folds.json"
            assert json.loads(run_folds.read_text(encoding="utf-8"))["folds"] == folds
            assert set(split["train"]) | set(split["val"]) == set(IDS) - set(folds[i])
            assert len(split["val"]) == 1  # a quarter of the 4 training subjects
            tested += split["test"]
        assert sorted(tested) == IDS
    runs = json.loads((out / "runs.json").read_text(encoding="utf-8"))
    assert [(r["model"], sorted(r["subjects"])) for r in runs] == [(m, IDS) for m in ROWS]


@pytest.mark.slow
def test_the_table_holds_both_rows_paired_statistics_and_a_forest_plot(bench):
    out, _ = bench
    table = (out / "table2.md").read_text(encoding="utf-8")
    assert "2-fold cross-validation" in table
    assert (
        "| model | raw Dice (primary) | Dice | IoU | lesion F1 | abs ΔV mL | abs ΔV voxels "
        "| HD95 mm (common subset) |" in table
    )
    # two table rows, then the paired row and its lesion-size line
    assert sum(line.startswith(f"| {m} |") for m in ROWS for line in table.splitlines()) == 4
    assert "| unetpp_edge | 2 | 8 | " in table  # the paired row: 2 runs (folds), 8 subjects
    paired = json.loads((out / "table2_paired.json").read_text(encoding="utf-8"))
    assert paired["reference"] == "unetpp"
    assert paired["primary"]["rows"]["unetpp_edge"]["all"]["n_pairs"] == 8
    assert (out / "table2_forest.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_a_fold_alone_and_the_gathering_call_reuse_finished_runs(bench):
    from conftest import run_cli

    out, args = bench
    checkpoint = out / "unetpp" / "seed0" / "fold1" / "run" / "best.ckpt"
    before = checkpoint.stat().st_mtime_ns
    alone = run_cli(*args, "--fold", "1", "--rows", ",".join(ROWS), *TINY)
    assert alone.returncode == 0, alone.stderr[-2000:]
    assert "run again without --fold" in alone.stdout
    # scored again with face connectivity: re-evaluated, not re-trained
    gathered = run_cli(*args, "--rows", ",".join(ROWS), "--connectivity", "6", *TINY)
    assert gathered.returncode == 0, gathered.stderr[-2000:]
    assert checkpoint.stat().st_mtime_ns == before
    result = json.loads((checkpoint.parent.parent / "result.json").read_text(encoding="utf-8"))
    assert result["connectivity"] == 6
    summary = json.loads(
        (checkpoint.parent.parent / "evaluation" / "summary.json").read_text(encoding="utf-8")
    )
    assert summary["lesion_connectivity"] == 6
    # another setting in the same folder is refused in one line
    other = run_cli(*args, "--rows", "unetpp", *TINY, "--set", "optim.lr=0.5")
    assert other.returncode == 1 and "another setting" in other.stderr
    assert "Traceback" not in other.stderr


def test_bad_fold_settings_are_refused_before_anything_is_written(dataset, tmp_path, cli):
    run = tmp_path / "run"
    result = cli("train", "--data", dataset, "--out", run, "--folds", "2", "--fold", "2")
    assert result.returncode == 1 and "--fold 2 must be in 0..1" in result.stderr
    result = cli("train", "--data", dataset, "--out", run, "--fold", "0")
    assert result.returncode == 1 and "--folds K and --fold I together" in result.stderr
    bench = tmp_path / "bench"
    args = ["benchmark", "table", "--table", "2", "--data", dataset, "--out", bench]
    result = cli(*args, "--fold", "0")
    assert result.returncode == 1 and "needs --folds K" in result.stderr
    assert not run.exists() and not bench.exists()


@pytest.mark.slow
def test_train_with_a_fold_tests_on_the_benchmarks_fold(bench, dataset, tmp_path, cli):
    out, _ = bench
    run = tmp_path / "fold1"
    result = cli("train", "--config", "atlas/table3_unetpp", "--data", dataset, "--out", run,
                 "--folds", "2", "--fold", "1", *TINY)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    folds = json.loads((out / "folds_seed0.json").read_text(encoding="utf-8"))["folds"]
    assert json.loads((run / "folds.json").read_text(encoding="utf-8"))["folds"] == folds
    assert json.loads((run / "split.json").read_text(encoding="utf-8"))["test"] == folds[1]
    # the run folder is bound to its fold
    again = cli("train", "--config", "atlas/table3_unetpp", "--data", dataset, "--out", run,
                "--folds", "2", "--fold", "0", *TINY)  # fmt: skip
    assert again.returncode == 1 and "another split or fold" in again.stderr
