"""The seam between training and inference: one preprocessing description in the checkpoint,
read from older checkpoints too, and one prepared scan whose parts are computed once."""

from __future__ import annotations

import numpy as np
import torch
from data_files import write_nifti

import strokeseg
from strokeseg.data import preprocessing as prep_module
from strokeseg.data.io import load_volume
from strokeseg.data.preprocessing import Preprocessing, TrainingData
from strokeseg.inference.engine import Predictor
from strokeseg.inference.options import InferenceOptions
from strokeseg.inference.predict import predict_scan
from strokeseg.reports.scan import RunReport


def test_an_older_flat_description_reads_as_the_typed_one():
    old = {
        "data": {
            "layout": "atlas_r2.0",
            "modality": "ct",
            "window": "stroke",
            "context_slices": 2,
            "mirror": True,
            "zero_outside_crop": True,
            "fingerprint": {"n_scans": 3},
        },
        "config": {"data": {"patch_size": 96}},
    }
    data = TrainingData.from_meta(old)
    assert data.preprocessing == Preprocessing("ct", "stroke", 2, True, True, "template")
    assert (data.layout, data.fingerprint, data.slice_grid) == (
        "atlas_r2.0",
        {"n_scans": 3},
        (96, 96),
    )
    # what this version writes reads back as itself
    assert TrainingData.from_meta({"data": data.to_dict()}) == data
    assert data.to_dict()["preprocessing"]["window"] == "stroke"
    assert TrainingData.from_meta({"data": {}}).preprocessing == Preprocessing()


def test_one_scan_is_normalised_and_its_head_found_once_for_predict_and_report(
    tmp_path, monkeypatch
):
    """predict_scan (engine, quality checks) and the report share one prepared scan."""
    image = np.zeros((48, 56, 12), np.float32)
    image[8:40, 8:48, 2:10] = 300 + np.random.default_rng(0).normal(0, 5, (32, 40, 8))
    volume = load_volume(write_nifti(tmp_path / "scan.nii.gz", image))
    calls = {"normalize": 0, "head_mask": 0}

    def counted(name):
        real = getattr(prep_module, name)

        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)

        return wrapper

    for name in calls:
        monkeypatch.setattr(prep_module, name, counted(name))
    torch.manual_seed(0)
    network = strokeseg.deploy(strokeseg.create_model("unetpp", width=0.125, norm="batch"))
    meta = {"model_name": "unetpp", "data": TrainingData(Preprocessing())}
    predictor = Predictor([network], meta, InferenceOptions(runtime="eager", crop=True))
    row, scan, result = predict_scan("scan", volume, predictor)
    RunReport(tmp_path / "out", meta, "x.ckpt").add("scan", scan, result, row.warnings)
    assert calls == {"normalize": 1, "head_mask": 1}
    assert (tmp_path / "out" / "scan_report.html").is_file()
