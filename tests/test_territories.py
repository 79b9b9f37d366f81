"""Vascular territories against the vendored Arterial Atlas itself, resampled to the template
grid independently (nibabel's resampling by world coordinates, nearest neighbour)."""

from __future__ import annotations

import csv
import io

import nibabel as nib
import numpy as np
import pytest
from data_files import write_nifti
from nibabel.processing import resample_from_to

from strokeseg.data.io import load_volume
from strokeseg.data.preprocessing import PreparedScan, Preprocessing, TrainingData, prepare
from strokeseg.data.template import MNI152_AFFINE, MNI152_SHAPE
from strokeseg.inference.engine import Segmentation
from strokeseg.reports.scan import LESION_CSV, TERRITORY_CSV, RunReport
from strokeseg.reports.territories import (
    NOT_ON_TEMPLATE,
    atlas_image,
    lesion_territories,
    territories,
)

META = {"data": TrainingData(Preprocessing())}


def segmented(volume, mask, probability) -> tuple[PreparedScan, Segmentation]:
    """The MRI scan ``volume`` prepared, and a segmentation of it (``mask`` both raw and
    final) for a report."""
    scan = prepare(volume, Preprocessing())
    return scan, Segmentation(probability, mask, mask, scan)


@pytest.fixture(scope="module")
def atlas_on_template() -> np.ndarray:
    """The atlas on the 197x233x189 template grid (RAS), by world coordinates."""
    data, affine = atlas_image()
    image = nib.Nifti1Image(data, affine)
    return np.asarray(resample_from_to(image, (MNI152_SHAPE, MNI152_AFFINE), order=0).dataobj)


def test_the_table_names_32_territories_each_on_its_side_of_x_0():
    table = territories()
    assert sorted(table) == list(range(1, 33))
    assert len({t.abbreviation for t in table.values()}) == 32  # right-sided MCA ids fixed
    assert table[10].abbreviation == "MCAPR" and table[10].short == "MCA parietal right"
    assert table[7].short == "MCA frontal left"
    data, affine = atlas_image()
    for k, t in table.items():
        x = nib.affines.apply_affine(affine, np.argwhere(data == k))[:, 0]
        assert (np.median(x) < 0) == (t.side == "left"), t.name


def test_a_mask_inside_one_territory_is_all_that_territory(atlas_on_template):
    inside = atlas_on_template == 7  # MCA frontal left
    (part,) = lesion_territories(inside.astype(np.int32), MNI152_AFFINE)
    assert part.voxels == {7: int(inside.sum())}
    assert part.main() == ("MCA frontal left", 100.0)
    assert (part.left, part.right) == (int(inside.sum()), 0)


def test_a_mask_split_between_two_territories_has_their_shares(atlas_on_template):
    acal, mcafl = atlas_on_template == 1, atlas_on_template == 7
    box = np.zeros(MNI152_SHAPE, dtype=bool)
    box[40:90, 120:170, 110:140] = True
    labels = (box & (acal | mcafl)).astype(np.int32)
    n_aca, n_mca = int((box & acal).sum()), int((box & mcafl).sum())
    assert n_aca > 0 and n_mca > 0
    (part,) = lesion_territories(labels, MNI152_AFFINE)
    assert part.voxels == {1: n_aca, 7: n_mca}
    shares = {k: share for k, _, share in part.shares()}
    assert shares[1] == pytest.approx(100 * n_aca / (n_aca + n_mca))
    assert shares[7] == pytest.approx(100 * n_mca / (n_aca + n_mca))


def midline_scan_mask() -> tuple[np.ndarray, int, int]:
    """A lesion across the midline (10 columns at x < 0, 6 at x >= 0) and a left one."""
    mask = np.zeros(MNI152_SHAPE, dtype=np.uint8)
    mask[88:104, 100:110, 100:110] = 1  # world x = -10 .. 5
    mask[50:54, 140:144, 90:94] = 1  # world x = -48 .. -45
    return mask, 10 * 100 + 64, 6 * 100


STORAGE = {"RAS": (1, 1, 1), "LAS": (-1, 1, 1), "LPS": (-1, -1, 1)}


def stored_as(tmp_path, code: str, data: np.ndarray, name: str):
    """``data`` (RAS, template grid) written with the same world coordinates in ``code`` order."""
    flips = STORAGE[code]
    affine = MNI152_AFFINE.copy()
    for axis, f in enumerate(flips):
        if f < 0:
            affine[:3, 3] += affine[:3, axis] * (MNI152_SHAPE[axis] - 1)
            affine[:3, axis] *= -1
    stored = data[tuple(slice(None, None, f) for f in flips)]
    return write_nifti(tmp_path / code / f"{name}.nii", stored, affine)


@pytest.mark.parametrize("code", ["LAS", "LPS"])
def test_territories_and_sides_do_not_depend_on_storage_order(tmp_path, code):
    mask, left, right = midline_scan_mask()
    results = {}
    for c in ("RAS", code):
        scan = load_volume(stored_as(tmp_path, c, np.full(MNI152_SHAPE, 100.0, np.float32), "s"))
        stored_mask = load_volume(stored_as(tmp_path, c, mask, "m")).data.astype(np.uint8)
        assert nib.aff2axcodes(scan.source.affine) == tuple(c)
        report = RunReport(tmp_path / f"out{c}", META, "x.ckpt")
        result = report.add("scan", *segmented(scan, stored_mask, np.full(MNI152_SHAPE, 0.9)), [])
        report.finish()
        results[c] = [(tmp_path / f"out{c}" / n).read_text() for n in (LESION_CSV, TERRITORY_CSV)]
        big = result.lesions[0].territories
        assert (big.left, big.right) == (left - 64, right)
    assert results["RAS"] == results[code]
    rows = list(csv.DictReader(io.StringIO(results[code][1])))
    sides = {r["region"]: int(r["voxels"]) for r in rows if r["lesion_id"] == "all"}
    assert (sides["left"], sides["right"]) == (left, right)
    assert (
        sum(int(r["voxels"]) for r in rows if r["kind"] == "territory" and r["lesion_id"] == "all")
        == left + right
    )


def test_a_scan_off_the_template_gets_one_note_and_no_territory(tmp_path):
    shape = (20, 24, 10)
    mask = np.zeros(shape, dtype=np.uint8)
    mask[2:5, 3:5, 1:3] = 1
    mask[12:15, 3:5, 1:3] = 1
    scan = load_volume(write_nifti(tmp_path / "s.nii.gz", np.full(shape, 100.0, np.float32)))
    report = RunReport(tmp_path / "out", META, "x.ckpt")
    result = report.add("scan", *segmented(scan, mask, np.full(shape, 0.9)), [])
    report.finish()
    assert all(les.territories is None for les in result.lesions)
    rows = list(csv.DictReader((tmp_path / "out" / TERRITORY_CSV).open()))
    assert [(r["scan"], r["kind"], r["region"]) for r in rows] == [
        ("scan", "none", NOT_ON_TEMPLATE)
    ]
    lesions = list(csv.DictReader((tmp_path / "out" / LESION_CSV).open()))
    assert [(r["territory"], r["territory_percent"]) for r in lesions] == [("", "")] * 2
    page = (tmp_path / "out" / "scan_report.html").read_text()
    assert page.count("territories need a map from the scan to the MNI152 template") == 1
    assert "main vascular territory" not in page


def test_bids_sidecar_gives_volumes_per_territory_and_hemisphere(tmp_path):
    from strokeseg.reports.bids import territory_fields

    mask, left, right = midline_scan_mask()
    scan = load_volume(stored_as(tmp_path, "RAS", np.full(MNI152_SHAPE, 100.0, np.float32), "s"))
    report = RunReport(tmp_path / "out", META, "x.ckpt")
    result = report.add("scan", *segmented(scan, mask, np.full(MNI152_SHAPE, 0.9)), [])
    fields = territory_fields(result)
    assert fields["LesionVolumeByHemisphereML"] == {"left": left / 1000, "right": right / 1000}
    assert len(fields["LesionTerritories"]) == 2
    by_territory = fields["LesionVolumeByTerritoryML"]
    assert sum(by_territory.values()) == pytest.approx((left + right) / 1000)
    assert list(by_territory) == sorted(by_territory, key=lambda k: -by_territory[k])
