"""Heavy optional dependencies as extras: a missing one is one line naming the extra."""

from __future__ import annotations

import sys

import pytest
import torch

from strokeseg.errors import StrokesegError


def test_export_without_onnx_names_the_extra(tmp_path, monkeypatch):
    from strokeseg.inference.export import export

    monkeypatch.setitem(sys.modules, "onnx", None)  # what an uninstalled module looks like
    network = torch.nn.Conv2d(1, 1, 3, padding=1)
    with pytest.raises(StrokesegError, match=r"onnx.*pip install 'strokeseg\[export\]'"):
        export(network, {"model_name": "conv"}, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_dicom_without_simpleitk_names_the_extra(tmp_path, monkeypatch):
    from strokeseg.data.io import load_volume

    (tmp_path / "series").mkdir()
    (tmp_path / "series" / "1.dcm").write_bytes(b"\0" * 200)
    monkeypatch.setitem(sys.modules, "SimpleITK", None)
    with pytest.raises(StrokesegError, match=r"SimpleITK.*pip install 'strokeseg\[dicom\]'"):
        load_volume(tmp_path / "series")


def test_synth_without_nilearn_names_the_extra(monkeypatch):
    from strokeseg.data.template import template_file

    monkeypatch.setitem(sys.modules, "nilearn", None)
    with pytest.raises(StrokesegError, match=r"nilearn.*pip install 'strokeseg\[synth\]'"):
        template_file("t1")


def test_the_cli_prints_the_missing_extra_in_one_line(tmp_path):
    import subprocess

    code = (
        "import sys; sys.modules['nilearn'] = None; from strokeseg.cli import main; "
        f"sys.exit(main(['synth', 'atlas', '--out', {str(tmp_path / 'c')!r}, '--subjects', '1']))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(errors) == 1 and errors[0].endswith("pip install 'strokeseg[synth]'")


def test_make_install_installs_every_extra():
    from pathlib import Path

    import tomllib

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    assert extras["all"] == ["strokeseg[export,dicom,synth]"]
    assert not {"onnx", "SimpleITK", "nilearn"} & {d.split(">")[0] for d in project["dependencies"]}
    assert '".[dev,all]"' in (root / "Makefile").read_text(encoding="utf-8")
