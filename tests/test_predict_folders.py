"""``predict`` on folders: a killed run finishes with --skip-existing, outputs never land in
the input folder, failures are summarised on stderr, one output flag everywhere."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import nibabel as nib
import numpy as np
import pytest
import torch
from data_files import write_nifti

from strokeseg.cli import build_parser, main
from strokeseg.inference.predict import KEPT
from strokeseg.models import create_model

N_SCANS = 8
SHAPE = (32, 48, 12)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A self-describing checkpoint of a small random U-Net (what predict reads)."""
    torch.manual_seed(0)
    model = create_model("unet", width=0.125)
    path = tmp_path_factory.mktemp("ckpt") / "best.ckpt"
    meta = {
        "model_name": "unet",
        "model_kwargs": {"width": 0.125},
        "data": {"modality": "mri", "window": "brain"},
    }
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"strokeseg": meta, "state_dict": state}, path)
    return path


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    root = tmp_path_factory.mktemp("scans")
    rng = np.random.default_rng(0)
    for i in range(N_SCANS):
        write_nifti(root / f"s{i:02d}.nii.gz", rng.normal(0, 1, SHAPE).astype(np.float32))
    return root


def _predict(*args):
    return [sys.executable, "-m", "strokeseg.cli", "predict", *map(str, args)]


def test_a_killed_folder_run_finishes_with_skip_existing(checkpoint, scans, tmp_path, cli, capsys):
    assert (
        main(
            [
                "predict",
                "-i",
                str(scans),
                "-o",
                str(tmp_path / "ref"),
                "--checkpoint",
                str(checkpoint),
            ]
        )
        == 0
    )  # an uninterrupted run, for reference

    out = tmp_path / "out"
    process = subprocess.Popen(
        _predict("-i", scans, "-o", out, "--checkpoint", checkpoint),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while len(list(out.glob("*_mask.nii.gz"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done = sorted(p.name for p in out.glob("*_mask.nii.gz"))
    assert 2 <= len(done) < N_SCANS, "the kill must land half way"
    for name in done:  # atomic writes: whatever exists is whole
        assert np.asarray(nib.load(out / name).dataobj).shape == SHAPE
    summarised = {p.name.removesuffix("_summary.json") for p in out.glob("*_summary.json")}

    capsys.readouterr()
    assert main(["predict", "-i", str(scans), "-o", str(out), "--checkpoint", str(checkpoint)]) == 1
    assert "--skip-existing" in capsys.readouterr().err  # refused, not mixed

    resumed = cli("predict", "-i", scans, "-o", out, "--checkpoint", checkpoint, "--skip-existing")
    assert resumed.returncode == 0, resumed.stderr
    names = sorted(os.listdir(out))
    per_scan = [
        f"s{i:02d}_{kind}" for i in range(N_SCANS) for kind in ("mask.nii.gz", "summary.json")
    ]
    assert names == sorted([*per_scan, "lesions.csv"])
    for i in range(N_SCANS):  # every mask present, byte-equal to the uninterrupted run
        name = f"s{i:02d}_mask.nii.gz"
        assert (out / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()
    rows = list(csv.DictReader((out / "lesions.csv").open()))
    reference = list(csv.DictReader((tmp_path / "ref" / "lesions.csv").open()))
    volumes = ("scan", "lesion_volume_ml", "lesion_count")
    assert [[r[k] for k in volumes] for r in rows] == [[r[k] for k in volumes] for r in reference]
    # a kept scan's row comes from its summary; a mask the kill left without one is recomputed
    kept = {name.removesuffix("_mask.nii.gz") for name in done} - summarised
    for row, ref in zip(rows, reference, strict=True):
        assert row["warnings"] == (KEPT if row["scan"] in kept else ref["warnings"])
    assert [r["scan"] for r in rows] == [f"s{i:02d}" for i in range(N_SCANS)]


def test_output_in_the_input_folder_is_refused(checkpoint, scans, capsys):
    for args in (("-i", scans, "-o", scans), ("-i", scans / "s00.nii.gz", "--out", scans)):
        assert main(["predict", *map(str, args), "--checkpoint", str(checkpoint)]) == 1
        assert "output folder is the input folder" in capsys.readouterr().err
    assert sorted(p.name for p in scans.iterdir()) == [f"s{i:02d}.nii.gz" for i in range(N_SCANS)]


def test_failure_summary_goes_to_stderr(checkpoint, scans, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.nii.gz").write_bytes((scans / "s00.nii.gz").read_bytes())
    (folder / "b.nii.gz").write_bytes(b"\x1f\x8b broken")
    argv = ["predict", "-i", folder, "--output", tmp_path / "o", "--checkpoint", checkpoint]
    assert main([str(a) for a in argv]) == 1
    out, err = capsys.readouterr()
    assert "1 scan(s) failed, 1 written" in err
    assert "failed" not in out and out.startswith("a: ")


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--data", "d"],
        ["evaluate", "--pred", "p", "--gt", "g"],
        ["predict", "-i", "x", "--checkpoint", "c"],
        ["export", "--checkpoint", "c"],
        ["synth", "atlas"],
        ["demo"],
        ["benchmark", "table", "--table", "2", "--data", "d"],
    ],
)
def test_one_spelling_for_the_output_flag(argv):
    parser = build_parser()
    for flag in ("-o", "--out", "--output"):
        assert str(parser.parse_args([*argv, flag, "here"]).out) == "here"


def test_a_resumed_report_run_lists_every_scan_in_its_index(checkpoint, scans, tmp_path, cli):
    """--report with --skip-existing: the index lists the kept scans too, as the run that
    segmented them wrote their rows, in the scans' order."""
    from html_checks import check_html

    out = tmp_path / "out"
    args = ("predict", "-i", scans, "-o", out, "--checkpoint", checkpoint, "--report")
    first = cli(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    whole = (out / "report.html").read_text(encoding="utf-8")
    for name in ("s03", "s05"):  # as if the run had stopped before these two
        for suffix in ("_mask.nii.gz", "_summary.json", "_report.html", "_lesions.nii.gz"):
            (out / f"{name}{suffix}").unlink(missing_ok=True)
        for viewer in out.glob(f"{name}_lesions*"):
            viewer.unlink()
    resumed = cli(*args, "--skip-existing")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    index = (out / "report.html").read_text(encoding="utf-8")
    page = check_html(index, folder=out)
    assert page.tags["tr"] == 1 + N_SCANS
    names = [f"s{i:02d}" for i in range(N_SCANS)]
    assert [n for n in names if f">{n}</a>" in index] == names
    assert sorted(index.index(f">{n}</a>") for n in names) == [
        index.index(f">{n}</a>") for n in names
    ]
    assert index == whole  # the same scans, rows and figures as the uninterrupted run
