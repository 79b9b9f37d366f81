"""Reports through the real command line with a trained tiny checkpoint (conftest tiny_run)."""

from __future__ import annotations

import csv
import fnmatch
import json

import nibabel as nib
import numpy as np
from bids_rules import check_derivative_path
from html_checks import check_html


def read_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def scans_folder(tiny_dataset, tmp_path, ids=(0, 1)):
    scans = tmp_path / "scans"
    scans.mkdir()
    for i in ids:
        data = (tiny_dataset / "images" / f"case{i}.nii.gz").read_bytes()
        (scans / f"case{i}.nii.gz").write_bytes(data)
    return scans


def test_predict_report_writes_pages_label_images_and_lesion_rows(
    tiny_run, tiny_dataset, tmp_path, cli
):
    scans, out = scans_folder(tiny_dataset, tmp_path), tmp_path / "out"
    ckpt = tiny_run / "best.ckpt"
    result = cli("predict", "-i", scans, "-o", out, "--checkpoint", ckpt, "--report")
    assert result.returncode == 0, result.stderr[-3000:]
    index = check_html((out / "report.html").read_text(encoding="utf-8"), folder=out)
    assert sorted(v for _, k, v in index.refs if k == "href") == [
        "case0_report.html",
        "case1_report.html",
    ]
    totals = {r["scan"]: r for r in read_csv(out / "lesions.csv")}
    by_lesion = read_csv(out / "lesions_by_lesion.csv")
    for scan in ("case0", "case1"):
        check_html((out / f"{scan}_report.html").read_text(encoding="utf-8"))
        mask = np.asarray(nib.load(out / f"{scan}_mask.nii.gz").dataobj)
        labels = np.asarray(nib.load(out / f"{scan}_lesions.nii.gz").dataobj)
        assert np.array_equal(labels > 0, mask == 1)  # the label image covers the mask exactly
        rows = [r for r in by_lesion if r["scan"] == scan]
        assert [int(r["lesion_id"]) for r in rows] == list(range(1, labels.max() + 1))
        for r in rows:
            assert int(r["voxels"]) == np.count_nonzero(labels == int(r["lesion_id"]))
        total = sum(float(r["volume_ml"]) for r in rows)
        assert abs(total - float(totals[scan]["lesion_volume_ml"])) < 1e-3 * max(1, len(rows))
        assert int(totals[scan]["lesion_count"]) == len(rows)
        warned = totals[scan]["warnings"]
        assert (f"warning: {scan}:" in result.stderr) == bool(warned)
    assert "<scan>" not in result.stdout


def test_predict_report_refuses_to_overwrite_and_plain_predict_writes_no_html(
    tiny_run, tiny_dataset, tmp_path, cli
):
    scans, out = scans_folder(tiny_dataset, tmp_path, ids=(2,)), tmp_path / "out"
    ckpt = tiny_run / "best.ckpt"
    assert cli("predict", "-i", scans, "-o", out, "--checkpoint", ckpt).returncode == 0
    assert not list(out.glob("*.html")) and not (out / "case2_lesions.nii.gz").exists()
    (out / "report.html").write_text("mine")
    (out / "case2_mask.nii.gz").unlink()
    (out / "lesions.csv").unlink()
    result = cli("predict", "-i", scans, "-o", out, "--checkpoint", ckpt, "--report")
    assert result.returncode == 1 and "report.html: already exists" in result.stderr
    assert (out / "report.html").read_text() == "mine" and not (out / "case2_mask.nii.gz").exists()


def test_bids_app_on_a_synthatlas_tree_writes_valid_derivatives(tiny_run, tmp_path, cli):
    """SynthATLAS's tree (names and layout as generated; images cropped to keep the test fast)."""
    bids = tmp_path / "atlas"
    assert cli("synth", "atlas", "--out", bids, "--subjects", "2").returncode == 0
    for path in sorted(bids.glob("sub-*/ses-*/anat/*.nii.gz")):
        image = nib.load(path)
        nib.save(image.slicer[66:130, 84:148, 90:98], path)
    out = tmp_path / "derivatives" / "strokeseg"
    ckpt = tiny_run / "best.ckpt"
    args = ("bids", bids, out, "participant", "--checkpoint", ckpt)
    result = cli(*args, "--participant-label", "r001s002")
    assert result.returncode == 0, result.stderr[-3000:]
    description = json.loads((out / "dataset_description.json").read_text(encoding="utf-8"))
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "strokeseg"
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    inside = [p for p in files if p.parts[0].startswith("sub-") and len(p.parts) > 1]
    assert {p.parts[0] for p in inside} == {"sub-r001s002"}  # --participant-label honoured
    assert len(inside) == 9
    ignored = (out / ".bidsignore").read_text(encoding="utf-8").split()
    for path in inside:
        if path.name.endswith((".label.txt", ".ctbl", "_summary.json")):  # viewer colour
            assert any(fnmatch.fnmatch(path.name, p) for p in ignored)  # tables, index rows
            continue
        entities = check_derivative_path(path)
        assert entities == {
            "sub": "r001s002",
            "ses": "1",
            "space": "MNI152NLin2009aSym",
            "desc": "lesion",
        }
    anat = out / "sub-r001s002" / "ses-1" / "anat"
    stem = "sub-r001s002_ses-1_space-MNI152NLin2009aSym_desc-lesion"
    sidecar = json.loads((anat / f"{stem}_mask.json").read_text(encoding="utf-8"))
    assert sidecar["Type"] == "Lesion" and sidecar["Checkpoint"] == str(ckpt)
    assert sidecar["Sources"] == [
        "bids:raw:sub-r001s002/ses-1/anat/sub-r001s002_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz"
    ]
    mask = np.asarray(nib.load(anat / f"{stem}_mask.nii.gz").dataobj)
    dseg = np.asarray(nib.load(anat / f"{stem}_dseg.nii.gz").dataobj)
    assert np.array_equal(dseg > 0, mask == 1)
    probseg = nib.load(anat / f"{stem}_probseg.nii.gz")
    assert probseg.get_data_dtype() == np.float32
    assert np.allclose(probseg.affine, nib.load(anat / f"{stem}_mask.nii.gz").affine)
    assert np.all(np.asarray(probseg.dataobj)[mask == 1] >= sidecar["Threshold"])
    probseg_sidecar = json.loads((anat / f"{stem}_probseg.json").read_text(encoding="utf-8"))
    assert probseg_sidecar["Sources"] == sidecar["Sources"]
    assert sidecar["LesionCount"] == int(dseg.max()) == len(sidecar["LesionVolumesML"])
    assert sidecar["VascularTerritories"].startswith(
        "territories need a map from the scan to the MNI152"
    )
    lookup = (anat / f"{stem}_dseg.tsv").read_text(encoding="utf-8").splitlines()
    assert lookup[0] == "index\tname" and len(lookup) == 1 + sidecar["LesionCount"]
    check_html((out / "report.html").read_text(encoding="utf-8"), folder=out)
    check_html((out / "sub-r001s002_ses-1.html").read_text(encoding="utf-8"))
    assert ".bidsignore" in {p.name for p in files}
    again = cli(*args)
    assert again.returncode == 1 and "already exists" in again.stderr
    # --skip-existing keeps the segmented participant and segments the other one
    kept = {p: p.stat().st_mtime_ns for p in anat.iterdir()}
    more = cli(*args, "--skip-existing")
    assert more.returncode == 0, more.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in anat.iterdir()} == kept
    other = out / "sub-r001s001" / "ses-1" / "anat"
    assert len([p for p in other.iterdir() if p.name.startswith("sub-r001s001")]) == 9
    lesions = (out / "lesions.csv").read_text(encoding="utf-8").splitlines()
    scans = [line.split(",")[0] for line in lesions[1:]]
    assert scans == ["sub-r001s001_ses-1", "sub-r001s002_ses-1"]
    index = check_html((out / "report.html").read_text(encoding="utf-8"), folder=out)
    assert index.tags["tr"] == 1 + 2  # the kept participant's row too, from its summary


def test_evaluate_writes_report_html_in_both_forms(tiny_run, tiny_dataset, tmp_path, cli):
    ckpt = tiny_run / "best.ckpt"
    out = tmp_path / "eval"
    args = ("evaluate", "--checkpoint", ckpt, "--data", tiny_dataset, "--subjects", "all")
    result = cli(*args, "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    page = check_html((out / "report.html").read_text(encoding="utf-8"))
    assert page.tags["img"] == 5  # Bland-Altman, Dice by size, best/median/worst
    assert page.tags["tr"] == 1 + 6
    masks = tmp_path / "eval_masks"
    result = cli("evaluate", "--pred", tiny_dataset / "masks", "--gt", tiny_dataset / "masks",
                 "--out", masks)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    page = check_html((masks / "report.html").read_text(encoding="utf-8"))
    assert "1.000 ± 0.000" in " ".join(page.texts)  # masks against themselves
