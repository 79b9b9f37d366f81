"""Refused up front, in one line: atomic writes, profiles without a GPU, tables on the wrong
data, layouts from the one list, and progress bars on the long silent steps."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import numpy as np
import pytest
from data_files import volume_and_mask, write_nifti

import strokeseg
from strokeseg.data.io import atomic_path, write_atomic
from strokeseg.errors import StrokesegError

SRC = Path(strokeseg.__file__).parent


def test_atomic_path_keeps_the_old_file_when_the_write_fails(tmp_path):
    target = write_atomic(tmp_path / "a.json", "old")
    with pytest.raises(RuntimeError), atomic_path(target, overwrite=True) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["a.json"]
    with pytest.raises(StrokesegError, match=r"a.json: already exists \(pass --overwrite"):
        write_atomic(target, "new")
    with atomic_path(tmp_path / "folder", overwrite=True) as tmp:  # folders too (slice cache)
        tmp.mkdir()
        (tmp / "x").write_text("1")
    with atomic_path(tmp_path / "folder", overwrite=True) as tmp:
        tmp.mkdir()
        (tmp / "y").write_text("2")
    assert sorted(os.listdir(tmp_path)) == ["a.json", "folder"]
    assert os.listdir(tmp_path / "folder") == ["y"]


def test_one_atomic_write_helper_in_the_package():
    """Only strokeseg/data/io.py renames into place; every other module calls it."""
    renaming = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                name = node.func.attr
                owner = node.func.value
                if name in ("replace", "rename") and getattr(owner, "id", "") == "os":
                    renaming.append(path.relative_to(SRC).as_posix())
                if name in ("mkstemp", "NamedTemporaryFile"):
                    renaming.append(path.relative_to(SRC).as_posix())
                if name == "replace" and not isinstance(owner, ast.Constant) and node.args:
                    arg = node.args[0]
                    if isinstance(arg, ast.Name) and "png" in arg.id:  # Path.replace(out_png)
                        renaming.append(path.relative_to(SRC).as_posix())
    assert renaming == ["data/io.py"]


def test_benchmark_paper_profile_is_refused_without_a_gpu(tmp_path, cli, monkeypatch):
    import torch

    from strokeseg.jobs.benchmark import run_table

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(StrokesegError, match="needs a GPU.*--profile cpu.*--force"):
        run_table(2, tmp_path / "data", tmp_path / "out", "paper", 1)
    if torch.cuda.is_available():
        pytest.skip("the CLI check below needs a machine without a GPU")
    result = cli("benchmark", "table", "--table", "2", "--data", tmp_path, "--out", tmp_path / "b")
    assert result.returncode == 1 and not (tmp_path / "b").exists()
    assert result.stderr.count("\n") == 1 and "--profile cpu" in result.stderr
    forced = cli(
        "benchmark",
        "table",
        "--table",
        "2",
        "--data",
        tmp_path / "none",
        "--force",
        "--out",
        tmp_path / "b",
    )  # forced: goes on to read the data (and stops there)
    assert forced.returncode == 1 and "folder not found" in forced.stderr


def test_table_1_on_atlas_data_explains_itself():
    from strokeseg.jobs.benchmark_rows import modalities, row_configs

    assert modalities(1) == ["ct"] and modalities(3) == ["mri"] and modalities(2) == ["ct", "mri"]
    with pytest.raises(
        StrokesegError, match=r"Table 1 has no MRI setting.*CT data.*--table 2 or --table 3"
    ):
        row_configs(1, "mri")


def test_check_reads_layouts_from_the_one_list(tmp_path, cli):
    image, mask = volume_and_mask()
    write_nifti(tmp_path / "images" / "a.nii.gz", image)
    write_nifti(tmp_path / "masks" / "a.nii.gz", mask)
    result = cli("check", "--data", tmp_path, "--layout", "bids")
    from strokeseg.data.layouts import LAYOUTS

    assert result.returncode == 1
    assert result.stderr.strip().endswith(f"unknown layout 'bids'; valid: {', '.join(LAYOUTS)}")


@pytest.fixture
def bars(monkeypatch):
    """Record every tqdm bar's description (the long steps import tqdm when they run)."""
    import tqdm

    seen: list[str] = []
    real = tqdm.tqdm

    def recording(*args, **kwargs):
        seen.append(kwargs.get("desc", ""))
        return real(*args, **kwargs)

    monkeypatch.setattr(tqdm, "tqdm", recording)
    return seen


def test_long_steps_show_progress(tmp_path, bars):
    from strokeseg.commands.check import summarize
    from strokeseg.data.cache import SliceCache
    from strokeseg.data.layouts import find_dataset
    from strokeseg.training.config import load_config
    from strokeseg.training.run import subject_split

    for i in range(5):
        image, mask = volume_and_mask(i)
        write_nifti(tmp_path / "d" / "images" / f"c{i}.nii.gz", image)
        write_nifti(tmp_path / "d" / "masks" / f"c{i}.nii.gz", mask * (i % 2))
    summarize(tmp_path / "d")
    dataset = find_dataset(tmp_path / "d")
    SliceCache.build(dataset, ["c0", "c1"], tmp_path / "cache")
    config = load_config(None, ["data.stratify=true", "data.split=[3,1,1]"])
    split = subject_split(config, dataset)
    assert sorted(np.concatenate(list(split.values()))) == [f"c{i}" for i in range(5)]
    assert bars == ["check", "slice cache", "lesion volumes for the split"]


def test_lightning_banners_and_advertisements_are_silenced(tmp_path, capfd):
    import logging

    from strokeseg.training.config import load_config
    from strokeseg.training.run import build_trainer

    build_trainer(load_config(None), tmp_path, [])
    out, err = capfd.readouterr()
    for banner in ("litlogger", "Tip", "GPU available", "TPU available", "was configured so"):
        assert banner not in out + err
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    warning = logger.makeRecord(logger.name, logging.WARNING, "f", 1, "GPU available: x", (), None)
    assert logger.filter(warning)  # warnings pass, whatever they say


def test_model_building_blocks_are_defined_once():
    """One ``scaled``, one ``ConvBNReLU``, one ``DoubleConv`` in the models package."""
    defined: dict[str, list[str]] = {}
    for path in (SRC / "models").rglob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                defined.setdefault(node.name.lstrip("_"), []).append(path.name)
    for name in ("scaled", "ConvBNReLU", "DoubleConv"):
        assert defined[name] == ["blocks.py"], (name, defined[name])


def test_scaled_rounds_to_a_multiple_of_the_heads():
    from strokeseg.models.blocks import scaled

    assert [scaled(96, w, 3) for w in (1.0, 0.25, 0.125, 0.01)] == [96, 24, 12, 3]
    assert [scaled(64, w) for w in (1.0, 0.125, 0.001)] == [64, 8, 1]


def test_train_refused_for_its_data_writes_nothing_and_keeps_an_old_run(tmp_path, cli):
    (tmp_path / "empty").mkdir()
    for data in (tmp_path / "missing", tmp_path / "empty"):
        result = cli("train", "--config", "tiny", "--data", data, "--out", tmp_path / "new")
        assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr and str(data.name) in result.stderr
        assert not (tmp_path / "new").exists()
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.yaml").write_text("seed: 3\n", encoding="utf-8")
    (old / "best.ckpt").write_bytes(b"the user's network")
    cache = old / "cache" / "entry"
    cache.mkdir(parents=True)
    result = cli(
        "train", "--config", "tiny", "--data", tmp_path / "empty", "--out", old, "--overwrite"
    )
    assert result.returncode == 1 and "empty" in result.stderr
    assert (old / "best.ckpt").read_bytes() == b"the user's network" and cache.is_dir()
