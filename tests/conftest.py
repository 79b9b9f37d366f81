"""Shared fixtures: the real command line in a subprocess, and deterministic torch."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)


def run_cli(*args: str, cwd=None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``strokeseg ARGS`` as a user would (a new Python process); capture text output."""
    return subprocess.run(
        [sys.executable, "-m", "strokeseg.cli", *map(str, args)],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        cwd=cwd,
        timeout=timeout,
    )


@pytest.fixture
def cli():
    return run_cli


SHORT_EPOCH = (
    "--set",
    "optim.epochs=1",
    "--set",
    "trainer.check_val_every_n_epoch=1",
    "--set",
    "trainer.limit_train_batches=2",
)
"""``--set`` items for one epoch of two batches, validated: a training in seconds."""


def blob_dataset(root, subjects: int):
    """``subjects`` blob subjects (test_workflow.blob_subject) in plain folders under ``root``."""
    from data_files import write_nifti
    from test_workflow import blob_subject

    for i in range(subjects):
        image, mask = blob_subject(i)
        write_nifti(root / "images" / f"case{i}.nii.gz", image)
        write_nifti(root / "masks" / f"case{i}.nii.gz", mask)
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """Six blob subjects in plain folders, shared by all tests."""
    return blob_dataset(tmp_path_factory.mktemp("folders"), 6)


@pytest.fixture(scope="session")
def tiny_run(tiny_dataset, tmp_path_factory):
    """One tiny training through the CLI (about a minute), shared by every test that needs a
    trained checkpoint, so the suite trains it once."""
    out = tmp_path_factory.mktemp("run")
    result = run_cli("train", "--config", "tiny", "--data", tiny_dataset, "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out
