"""Dataset layouts as they ship: subjects found, masks unioned, hidden files skipped, splits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from data_files import volume_and_mask, write_dicom_series, write_nifti

from strokeseg.data import (
    find_dataset,
    from_slices,
    load_split,
    load_subject,
    load_volume,
    make_split,
    normalize,
    save_like,
    save_split,
    to_slices,
)
from strokeseg.data.splits import lesion_voxels
from strokeseg.errors import StrokesegError


def test_atlas_r12_unions_lesion_masks_and_reads_deface_names(tmp_path):
    image, mask = volume_and_mask()
    second = np.zeros_like(mask)
    second[12:15, 2:4, 5:7] = 1
    t01 = tmp_path / "Site1" / "031768" / "t01"
    write_nifti(t01 / "031768_t1w_deface_stx.nii.gz", image)
    write_nifti(t01 / "031768_LesionSmooth_stx.nii.gz", mask)
    write_nifti(t01 / "031768_LesionSmooth_1_stx.nii.gz", second)
    t01b = tmp_path / "Site2" / "031800" / "t01"
    write_nifti(t01b / "031800_t1w_stx.nii.gz", image)
    write_nifti(t01b / "031800_LesionSmooth_stx.nii.gz", mask)

    dataset = find_dataset(tmp_path)
    assert (dataset.layout, dataset.modality) == ("atlas_r1.2", "mri")
    assert [s.id for s in dataset.subjects] == ["031768", "031800"]
    assert len(dataset.subjects[0].masks) == 2
    _, union = load_subject(dataset.subjects[0])
    np.testing.assert_array_equal(union, mask | second)
    assert union.sum() == mask.sum() + second.sum()  # disjoint lesions


def _bids(root, sub, image, mask):
    anat = root / sub / "ses-1" / "anat"
    stem = f"{sub}_ses-1_space-MNI152NLin2009aSym"
    write_nifti(anat / f"{stem}_T1w.nii.gz", image)
    write_nifti(anat / f"{stem}_label-L_desc-T1lesion_mask.nii.gz", mask)
    return anat, stem


def test_atlas_r20_nested_bids_skips_hidden_files(tmp_path):
    image, mask = volume_and_mask()
    site = tmp_path / "Training" / "R001"
    anat, stem = _bids(site, "sub-r001s001", image, mask)
    _bids(site, "sub-r001s002", image, mask)
    (anat / f"._{stem}_T1w.nii.gz").write_bytes(b"\x00resource fork")
    _bids(tmp_path / "Training" / ".trash", "sub-r009s009", image, mask)

    dataset = find_dataset(tmp_path)
    assert dataset.layout == "atlas_r2.0"
    assert [s.id for s in dataset.subjects] == ["sub-r001s001", "sub-r001s002"]
    volume, union = load_subject(dataset.subjects[0])
    np.testing.assert_array_equal(union, mask)
    assert volume.data.shape == image.shape


@pytest.mark.parametrize(
    ("info", "modality"),
    [({"channel_names": {"0": "CT"}}, "ct"), ({"modality": {"0": "T1"}}, "mri")],
)
def test_nnunet_raw(tmp_path, info, modality):
    image, mask = volume_and_mask()
    (tmp_path / "dataset.json").write_text(
        json.dumps({**info, "file_ending": ".nii.gz"}), encoding="utf-8"
    )
    write_nifti(tmp_path / "imagesTr" / "case_001_0000.nii.gz", image)
    write_nifti(tmp_path / "labelsTr" / "case_001.nii.gz", mask)
    write_nifti(tmp_path / "imagesTr" / "case_002_0000.nii.gz", image)  # label missing
    write_nifti(tmp_path / "labelsTr" / "case_003.nii.gz", mask)  # image missing
    write_nifti(tmp_path / "imagesTs" / "case_010_0000.nii.gz", image)

    dataset = find_dataset(tmp_path)
    assert (dataset.layout, dataset.modality) == ("nnunet", modality)
    assert {s.id: len(s.masks) for s in dataset.subjects} == {
        "case_001": 1,
        "case_002": 0,
        "case_010": 0,
    }
    assert len(dataset.problems) == 2
    assert "case_002_0000.nii.gz: no label" in dataset.problems[0]
    assert "case_003.nii.gz: label without an image" in dataset.problems[1]


def test_plain_folders_match_mask_suffixes(tmp_path):
    image, mask = volume_and_mask()
    for name in ("a", "b", "c"):
        write_nifti(tmp_path / "images" / f"{name}.nii.gz", image)
    write_nifti(tmp_path / "labels" / "a_mask.nii.gz", mask)
    write_nifti(tmp_path / "labels" / "b_seg.nii", mask)
    write_nifti(tmp_path / "labels" / "zzz.nii.gz", mask)

    dataset = find_dataset(tmp_path)
    assert dataset.layout == "folders"
    assert {s.id: [m.name for m in s.masks] for s in dataset.subjects} == {
        "a": ["a_mask.nii.gz"],
        "b": ["b_seg.nii"],
        "c": [],
    }
    orphan = tmp_path / "labels" / "zzz.nii.gz"
    assert dataset.problems == [f"{orphan}: mask without a matching image"]


def test_dicom_folder_of_series_with_mask_beside(tmp_path):
    array = np.full((4, 10, 12), 30, dtype=np.int16)
    direction = (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)
    for name in ("patient1", "patient2"):
        write_dicom_series(tmp_path / name, array, (0.5, 0.5, 5.0), (0.0, 0.0, 0.0), direction)
    volume = load_volume(tmp_path / "patient1")
    mask = np.zeros(volume.data.shape, np.uint8)
    mask[2:4, 3:6, 1] = 1
    save_like(mask, volume, tmp_path / "patient1_mask.nii.gz")

    dataset = find_dataset(tmp_path)
    assert (dataset.layout, dataset.modality) == ("dicom", "ct")
    assert [(s.id, len(s.masks)) for s in dataset.subjects] == [("patient1", 1), ("patient2", 0)]
    image, union = load_subject(dataset.subjects[0])
    np.testing.assert_array_equal(union, mask)
    assert float(image.data.max()) == 30.0


def test_layout_override_and_folder_errors(tmp_path):
    image, mask = volume_and_mask()
    _bids(tmp_path / "data", "sub-r001s001", image, mask)
    assert find_dataset(tmp_path / "data", layout="atlas_r2.0").layout == "atlas_r2.0"
    with pytest.raises(StrokesegError, match="no subjects found for layout folders"):
        find_dataset(tmp_path / "data", layout="folders")
    with pytest.raises(StrokesegError, match="data: no dataset.json"):
        find_dataset(tmp_path / "data", layout="nnunet")
    with pytest.raises(StrokesegError, match="unknown layout 'bids'"):
        find_dataset(tmp_path / "data", layout="bids")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".DS_Store").write_text("x", encoding="utf-8")
    with pytest.raises(StrokesegError, match=f"^{tmp_path / 'empty'}: folder is empty$"):
        find_dataset(tmp_path / "empty")
    with pytest.raises(StrokesegError, match=f"^{tmp_path / 'gone'}: folder not found$"):
        find_dataset(tmp_path / "gone")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(StrokesegError, match="other: no recognised dataset layout"):
        find_dataset(tmp_path / "other")


def test_duplicate_subject_ids_are_an_error(tmp_path):
    image, mask = volume_and_mask()
    for site in ("Site1", "Site2"):
        write_nifti(tmp_path / site / "000001" / "t01" / "000001_t1w_stx.nii.gz", image)
    with pytest.raises(StrokesegError, match="subject id '000001' also used by"):
        find_dataset(tmp_path)


def test_slices_crop_to_multiples_of_16_and_invert_exactly():
    rng = np.random.default_rng(0)
    volume = rng.random((197, 233, 3)).astype(np.float32)
    slices = to_slices(volume)
    assert slices.shape == (3, 224, 192)  # the paper's 224 x 192
    # centre crop: 233 -> 224 drops 4 rows in front and 5 behind; 197 -> 192 drops 2 and 3
    np.testing.assert_array_equal(slices[1, 0, 0], volume[2, 4, 1])
    np.testing.assert_array_equal(slices[2, 10, 7], volume[9, 14, 2])
    back = from_slices(slices, volume.shape)
    np.testing.assert_array_equal(back[2:194, 4:228], volume[2:194, 4:228])
    assert back[:2].sum() == 0 and back[:, 228:].sum() == 0

    small = rng.random((20, 12, 2)).astype(np.float32)  # 20 -> 16 (crop), 12 -> 16 (pad)
    s = to_slices(small)
    assert s.shape == (2, 16, 16)
    assert s[:, :2].sum() == 0 and s[:, 14:].sum() == 0
    np.testing.assert_array_equal(from_slices(s, small.shape)[2:18], small[2:18])


def test_normalize_rules():
    ct = np.array([-1000.0, 0.0, 20.0, 40.0, 60.0, 80.0, 1000.0])
    np.testing.assert_allclose(normalize(ct, "ct"), [0, 0, 0.25, 0.5, 0.75, 1, 1])
    np.testing.assert_allclose(normalize(ct, "ct", "stroke"), [0, 0, 0, 0.5, 1, 1, 1])
    mri = np.concatenate([np.zeros(1000), np.arange(1, 1001)]).astype(np.float32)
    out = normalize(mri, "mri")
    low, high = np.percentile(np.arange(1, 1001), [0.5, 99.5])
    np.testing.assert_allclose(out[1500], (501 - low) / (high - low), rtol=1e-6)
    assert out[:1000].max() == 0 and out.max() == 1 and out.dtype == np.float32
    with pytest.raises(StrokesegError, match="window 'lung'"):
        normalize(ct, "ct", "lung")


def test_splits_are_seeded_disjoint_and_round_trip(tmp_path):
    ids = [f"sub-{i:03d}" for i in range(229)]
    split = make_split(ids, (120, 40, 60), seed=7)
    assert [len(split[p]) for p in ("train", "val", "test")] == [120, 40, 60]
    assert len(set(sum(split.values(), []))) == 220
    assert make_split(list(reversed(ids)), (120, 40, 60), seed=7) == split
    assert make_split(ids, (120, 40, 60), seed=8) != split
    fractions = make_split(ids[:45], (0.7, 0.1, 0.2), seed=0)
    assert [len(fractions[p]) for p in ("train", "val", "test")] == [32, 4, 9]
    assert load_split(save_split(split, tmp_path / "split.json")) == split
    with pytest.raises(StrokesegError, match="need 230 subjects, found 229"):
        make_split(ids, (130, 40, 60), seed=0)
    with pytest.raises(StrokesegError, match="must add up to 1"):
        make_split(ids, (0.5, 0.1, 0.1), seed=0)


def test_a_stratified_split_spans_the_lesion_volumes():
    ids = [f"sub-{i:02d}" for i in range(20)]
    volumes = {i: float(rank) for rank, i in enumerate(reversed(ids))}  # ranked backwards
    splits = [make_split(ids, (0.6, 0.2, 0.2), seed, volumes) for seed in range(4)]
    for split in splits:
        assert [len(split[p]) for p in ("train", "val", "test")] == [12, 4, 4]
        for part in ("val", "test"):  # one subject from each fifth of the volume ranking
            assert sorted(int(volumes[i]) // 5 for i in split[part]) == [0, 1, 2, 3]
    assert len({json.dumps(s) for s in splits}) == 4, "the seed still chooses the subjects"
    assert make_split(ids[::-1], (0.6, 0.2, 0.2), 0, volumes) == splits[0]
    many = {f"s{i:03d}": float(i % 13) for i in range(229)}  # ties, and 9 subjects left out
    paper = make_split(list(many), (120, 40, 60), 0, many)
    assert [len(paper[p]) for p in ("train", "val", "test")] == [120, 40, 60]
    assert len(set(sum(paper.values(), []))) == 220


def test_lesion_voxels_count_the_union_of_a_subjects_masks(tmp_path):
    a, b = np.zeros((6, 6, 4), np.uint8), np.zeros((6, 6, 4), np.uint8)
    a[1:3, 1:3, 1] = 1  # 4 voxels
    b[2:4, 2:4, 1] = 1  # 4 voxels, 1 shared with a
    paths = [write_nifti(tmp_path / "a.nii.gz", a), write_nifti(tmp_path / "b.nii.gz", b)]
    assert lesion_voxels(paths) == 7
    assert lesion_voxels([]) == 0


def test_padded_slices_keep_every_voxel():
    rng = np.random.default_rng(1)
    volume = rng.random((197, 233, 3)).astype(np.float32)
    slices = to_slices(volume, pad=True)
    assert slices.shape == (3, 240, 208)  # 233 -> 240 (3 + 4 rows), 197 -> 208 (5 + 6 columns)
    np.testing.assert_array_equal(slices[1, 3, 5], volume[0, 0, 1])
    np.testing.assert_array_equal(from_slices(slices, volume.shape), volume)
