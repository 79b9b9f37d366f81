"""Reports are valid, self-contained HTML that shows what it claims (parsed, not eyeballed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_files import write_nifti
from html_checks import check_html, chromium, dump_dom_offline

from strokeseg.data.io import Volume, load_volume
from strokeseg.data.preprocessing import Preprocessing, TrainingData, prepare
from strokeseg.inference.engine import Segmentation
from strokeseg.reports.evaluation import (
    OverlayCollector,
    pick_subjects,
    write_evaluation_report,
)
from strokeseg.reports.html import DISCLAIMER
from strokeseg.reports.scan import RunReport

SHAPE = (32, 36, 16)


@pytest.fixture
def report(tmp_path):
    """A run of two scans: one with two lesions (one with a quality warning), one empty."""
    image = np.zeros(SHAPE, np.float32)
    image[4:28, 4:32, 2:14] = 100 + np.random.default_rng(0).normal(0, 5, (24, 28, 12))
    mask = np.zeros(SHAPE, np.uint8)
    mask[6:9, 8:11, 4:6] = 1
    mask[20:26, 20:26, 8:12] = 1
    path = write_nifti(tmp_path / "in" / "scan<1>.nii.gz", image)  # a name to escape
    volume = prepare(load_volume(path), Preprocessing("mri"))
    data = TrainingData(Preprocessing("mri"))
    meta = {"model_name": "unetpp_mtl", "version": "0.1.0", "data": data}
    run = RunReport(tmp_path / "out", meta, "runs/tiny/best.ckpt")
    run.check(["scan<1>", "empty"])
    lesions = Segmentation(np.where(mask, 0.9, 0.1), mask, mask, volume)
    run.add("scan<1>", volume, lesions, ["confidence: low & odd"])
    empty = np.zeros(SHAPE, np.uint8)
    run.add("empty", volume, Segmentation(np.zeros(SHAPE), empty, empty, volume), ["mask: empty"])
    run.finish()
    return tmp_path / "out"


def test_scan_report_is_valid_self_contained_and_complete(report):
    text = (report / "scan<1>_report.html").read_text(encoding="utf-8")
    parsed = check_html(text)
    words = " ".join(parsed.texts)
    assert DISCLAIMER in words
    assert "scan<1>" in words and "scan<1>" not in text  # escaped in the source, shown as is
    assert "confidence: low & odd" in words
    for needed in ("RAS", "32 x 36 x 16", "1 x 1 x 1 mm", "mri", "runs/tiny/best.ckpt",
                   "neurological", "unetpp_mtl", "strokeseg 0.1.0"):  # fmt: skip
        assert needed in words, needed
    assert parsed.tags["img"] == 2  # montage, coronal + sagittal
    assert parsed.tags["tr"] == 3  # header + two lesions, largest first
    assert words.index("0.144") < words.index("0.018")  # 144 and 18 voxels of 1 mm3


def test_index_links_every_scan_report_and_lists_warnings(report):
    parsed = check_html((report / "report.html").read_text(encoding="utf-8"), folder=report)
    hrefs = sorted(v for _, k, v in parsed.refs if k == "href")
    assert hrefs == ["empty_report.html", "scan<1>_report.html"]
    assert parsed.tags["img"] == 2  # a thumbnail per scan
    words = " ".join(parsed.texts)
    assert "mask: empty" in words and "0.162" in words


def test_lesions_by_lesion_csv_beside_the_reports(report):
    lines = (report / "lesions_by_lesion.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and lines[1].startswith("scan<1>,1,0.1440,144,")


def test_existing_outputs_are_refused_before_any_work(report):
    from strokeseg.errors import StrokesegError

    run = RunReport(report, {"data": {}}, "x.ckpt")
    with pytest.raises(StrokesegError, match="already exists"):
        run.check(["scan<1>"])


@pytest.mark.skipif(chromium() is None, reason="Chromium not installed")
def test_reports_open_offline_in_headless_chromium(report):
    dom = dump_dom_offline(report / "scan<1>_report.html")
    assert "strokeseg lesion report" in dom and "<table>" in dom
    assert "lesion-1" not in dom  # nothing fetched or injected
    assert "strokeseg run report" in dump_dom_offline(report / "report.html")


def test_evaluation_report_shows_best_median_worst(tmp_path):
    rows, collector = [], OverlayCollector()
    rng = np.random.default_rng(1)
    for i, dice in enumerate([0.9, 0.1, 0.5, float("nan"), 0.7]):
        gt = np.zeros((20, 20, 6), np.uint8)
        gt[5 : 8 + i, 5:10, 2:4] = 1
        image = Volume(Path(f"s{i}"), rng.normal(100, 5, gt.shape), np.eye(4), None)
        collector.add(f"s{i}", image, gt, np.roll(gt, i, axis=0))
        rows.append({"subject": f"s{i}", "dice": dice, "gt_volume_ml": 0.1 * i,
                     "pred_volume_ml": 0.12 * i, "n_gt_lesions": 1.0, "n_pred_lesions": 1.0,
                     "lesion_f1": 1.0})  # fmt: skip
    assert [(label, r["subject"]) for label, r in pick_subjects(rows)] == [
        ("best", "s0"),
        ("median", "s2"),
        ("worst", "s1"),
    ]
    summary = {"n_subjects": 5, "dice_mean": 0.55, "dice_std": 0.3, "dice_pooled": 0.6,
               "lesion_f1_mean": 1.0, "empty_policy": "one"}  # fmt: skip
    path = write_evaluation_report(tmp_path, rows, summary, collector)
    parsed = check_html(path.read_text(encoding="utf-8"))
    assert parsed.tags["img"] == 5  # Bland-Altman, Dice by size, three overlays
    assert parsed.tags["tr"] == 6
    words = " ".join(parsed.texts)
    assert "best: s0, Dice 0.900" in path.read_text(encoding="utf-8")  # the overlay's alt text
    assert "0.550 ± 0.300" in words


def test_the_overlay_collector_keeps_slices_on_disk_and_gives_them_back(tmp_path):
    rng = np.random.default_rng(2)
    gt = np.zeros((20, 22, 6), np.uint8)
    gt[5:9, 5:10, 4] = 1  # the largest lesion area is on axial slice 4
    data = rng.normal(100, 5, gt.shape)
    image = Volume(Path("s"), data, np.diag([0.5, 2.0, 3.0, 1.0]), None)
    collector = OverlayCollector()
    collector.add("s", image, gt, np.roll(gt, 1, axis=0))
    collector.add("masks only", None, gt, gt)
    assert all(isinstance(path, Path) and path.is_file() for path in collector.files.values())
    plane, truth, pred, spacing, k = collector.slices("s")
    assert k == 4 and spacing == (0.5, 2.0)
    assert np.array_equal(truth, gt[:, :, 4] > 0)
    assert np.array_equal(pred, np.roll(gt, 1, axis=0)[:, :, 4] > 0)
    assert plane.shape == (20, 22) and np.isfinite(plane).all()
    assert collector.slices("masks only")[0] is None
    folder = Path(collector.folder.name)
    del collector
    assert not folder.exists()  # the temporary folder goes with the collector
