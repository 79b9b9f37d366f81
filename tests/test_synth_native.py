"""Native-space SynthATLAS (synth/native.py): scanner poses, voxel sizes and orientations,
ATLAS R3.0 names read back by the R3.0 reader, lesion volume kept."""

from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pytest
from native_scans import rotation_degrees, template_arrays

pytest.importorskip("nilearn")

from strokeseg.data import find_dataset, load_subject  # noqa: E402
from strokeseg.synth.native import (  # noqa: E402
    MAX_DEGREES,
    MAX_SHIFT_MM,
    ORIENTATIONS,
    draw_grid,
    write_native,
)


def _subject():
    t1, brain, affine = template_arrays()
    index = np.indices(brain.shape, sparse=True)
    lesion = sum((i - c) ** 2 for i, c in zip(index, (70, 120, 100), strict=True)) <= 12**2
    image = nib.Nifti1Image(np.round(300 * t1).astype(np.int16), affine)
    mask = nib.Nifti1Image((lesion & brain).astype(np.uint8), affine)
    return image, mask, brain.astype(np.uint8)


def test_native_subjects_read_back_as_atlas_r30_with_their_poses(tmp_path):
    image, mask, brain = _subject()
    template_mm3 = float(np.asanyarray(mask.dataobj).sum())  # 1 mm voxels
    centre = image.affine[:3, :3] @ np.argwhere(brain).mean(axis=0) + image.affine[:3, 3]
    drawn = {}
    for k, (sid, site) in enumerate([("sub-r001s001", "R001"), ("sub-r002s001", "R002")]):
        write_native(tmp_path, sid, site, (image, mask, brain), np.random.default_rng(k))
        drawn[sid] = draw_grid(np.random.default_rng(k), centre)  # the same draw again

    dataset = find_dataset(tmp_path)
    assert dataset.layout == "atlas_r3.0"
    assert {s.id: s.site for s in dataset.subjects} == {
        "sub-r001s001": "R001",
        "sub-r002s001": "R002",
    }
    for subject in dataset.subjects:
        grid = drawn[subject.id]
        written = nib.load(subject.image)
        assert written.shape == grid.shape
        np.testing.assert_allclose(written.affine, grid.affine, atol=1e-5)
        assert "".join(nib.aff2axcodes(written.affine)) in ORIENTATIONS
        spacing = sorted(written.header.get_zooms())
        anisotropic = spacing == pytest.approx([1.0, 1.0, 1.2], abs=1e-5)
        assert anisotropic or spacing == pytest.approx([spacing[0]] * 3, abs=1e-5)
        assert 0.8 <= spacing[0] <= 1.2
        assert rotation_degrees(grid.pose, np.eye(4)) <= np.sqrt(3) * MAX_DEGREES
        assert np.all(np.abs(grid.pose[:3, 3]) <= MAX_SHIFT_MM)
        volume, lesion = load_subject(subject)
        assert abs(lesion.sum() * volume.voxel_mm3 - template_mm3) < 0.03 * template_mm3
        assert volume.data[lesion == 1].mean() > 0  # the brain-extracted image holds the lesion
        table = subject.image.parent / f"{subject.id}_ses-1_metadata.csv"
        row = next(csv.DictReader(table.open()))
        assert row["site"] == subject.site and row["chronicity"] == "chronic"


def test_synth_atlas_native_through_the_cli(tmp_path, cli):
    out = tmp_path / "native"
    result = cli("synth", "atlas", "--out", out, "--subjects", "1", "--space", "native")
    assert result.returncode == 0, result.stderr
    dataset = find_dataset(out)
    assert dataset.layout == "atlas_r3.0" and dataset.subjects[0].site == "R001"
    tsv = (out / "participants.tsv").read_text().splitlines()
    assert tsv[0].split("\t")[-3:] == ["axcodes", "voxel_mm", "native_lesion_volume_mm3"]
    row = dict(zip(tsv[0].split("\t"), tsv[1].split("\t"), strict=True))
    native, template = float(row["native_lesion_volume_mm3"]), float(row["lesion_volume_mm3"])
    assert abs(native - template) < 0.05 * template + 30  # small lesions lose a few edge voxels
    result = cli("synth", "ct", "--out", tmp_path / "ct", "--space", "native")
    assert result.returncode == 2 and "--space: for SynthATLAS only" in result.stderr
