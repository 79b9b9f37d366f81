"""Real DDP: two CPU processes (gloo on loopback) started by torchrun, as on a GPU cluster."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import torch
from data_files import write_nifti
from test_workflow import blob_subject

import strokeseg

SCRIPT = Path(__file__).parent / "scripts" / "ddp_train.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_end_with_identical_weights(tmp_path):
    data = tmp_path / "data"
    for i in range(6):
        image, mask = blob_subject(i)
        write_nifti(data / "images" / f"case{i}.nii.gz", image)
        write_nifti(data / "masks" / f"case{i}.nii.gz", mask)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        str(SCRIPT),
        str(data),
        str(tmp_path / "out"),
    ]
    result = subprocess.run(
        cmd, capture_output=True, encoding="utf-8", errors="replace", timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / "out" / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["state"].keys() == ranks[1]["state"].keys()
    for name, value in ranks[0]["state"].items():
        assert torch.equal(value, ranks[1]["state"][name]), name
    assert ranks[0]["batches"] > 0
    assert [r["batch_size"] for r in ranks] == [2, 2]  # the tiny config's global batch of 4
    torch.manual_seed(0)  # the run's seed: the weights both ranks started from
    start = strokeseg.create_model("unetpp_mtl", width=0.125, norm="batch").state_dict()
    assert any(not torch.equal(start[k], v) for k, v in ranks[0]["state"].items()), "no training"
    last = torch.load(tmp_path / "out" / "run" / "last.ckpt", weights_only=True)
    assert last["strokeseg"]["model_name"] == "unetpp_mtl"
