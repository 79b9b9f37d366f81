"""ITK-SNAP and 3D Slicer colour tables beside the label image, parsed back independently."""

from __future__ import annotations

import csv
import re

import nibabel as nib
import numpy as np
from data_files import write_nifti
from test_territories import META, midline_scan_mask, segmented, stored_as

from strokeseg.data.io import load_volume
from strokeseg.data.template import MNI152_SHAPE
from strokeseg.reports.scan import LESION_CSV, RunReport

ITKSNAP_LINE = re.compile(
    r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([01])\s+([01])\s+\"(.*)\"$"
)


def read_itksnap(path):
    """{id: ((r, g, b), name)} from an ITK-SNAP label description file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[1] == "# ITK-SnAP Label Description File"
    table = {}
    for line in lines:
        if line.startswith("#"):
            continue
        m = ITKSNAP_LINE.match(line)
        assert m, line
        table[int(m[1])] = ((int(m[2]), int(m[3]), int(m[4])), m[8])
    return table


def read_slicer(path):
    """{id: ((r, g, b), name)} from a Slicer "# Color table file"."""
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# Color table file ")
    table = {}
    for line in lines:
        if line.startswith("#"):
            continue
        index, name, r, g, b, a = line.split(" ")
        table[int(index)] = ((int(r), int(g), int(b)), name)
        assert int(a) == (0 if int(index) == 0 else 255)
    assert lines[1] == f"# {len(table)} values"
    return table


def test_colour_tables_name_every_lesion_of_the_label_image(tmp_path):
    mask, _, _ = midline_scan_mask()
    scan = load_volume(stored_as(tmp_path, "LAS", np.full(MNI152_SHAPE, 100.0, np.float32), "s"))
    stored = load_volume(stored_as(tmp_path, "LAS", mask, "m")).data.astype(np.uint8)
    report = RunReport(tmp_path / "out", META, "x.ckpt")
    report.add("scan", *segmented(scan, stored, np.full(MNI152_SHAPE, 0.9)), [])
    report.finish()
    out = tmp_path / "out"
    labels = np.asarray(nib.load(out / "scan_lesions.nii.gz").dataobj)
    rows = list(csv.DictReader((out / LESION_CSV).open(encoding="utf-8")))
    itksnap = read_itksnap(out / "scan_lesions.label.txt")
    slicer = read_slicer(out / "scan_lesions.ctbl")
    ids = sorted(int(v) for v in np.unique(labels))
    assert sorted(itksnap) == sorted(slicer) == ids == [0, 1, 2]
    assert itksnap[0][1] == "Clear Label" and slicer[0][1] == "Background"
    for row in rows:
        i = int(row["lesion_id"])
        name = f"lesion {i} ({float(row['volume_ml']):.1f} mL, {row['territory']})"
        assert itksnap[i][1] == name and row["territory"]
        assert slicer[i][1] == name.replace(" ", "_")
        assert itksnap[i][0] == slicer[i][0] != (0, 0, 0)
    assert itksnap[1][0] != itksnap[2][0]


def test_without_territories_the_names_give_the_volume_alone(tmp_path):
    shape = (20, 24, 10)
    mask = np.zeros(shape, dtype=np.uint8)
    mask[2:12, 3:13, 1:9] = 1  # 800 voxels of 1 mm3
    scan = load_volume(write_nifti(tmp_path / "s.nii.gz", np.full(shape, 100.0, np.float32)))
    report = RunReport(tmp_path / "out", META, "x.ckpt")
    report.add("scan", *segmented(scan, mask, np.full(shape, 0.9)), [])
    itksnap = read_itksnap(tmp_path / "out" / "scan_lesions.label.txt")
    assert itksnap[1][1] == "lesion 1 (0.8 mL)"
