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
