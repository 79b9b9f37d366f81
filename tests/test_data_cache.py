"""The slice cache: decoded once, re-used while valid, lesion oversampling, light augmentation."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from data_files import volume_and_mask, write_nifti
from torch.utils.data import DataLoader

from strokeseg.data import find_dataset, normalize, to_slices
from strokeseg.data.cache import SliceCache, SliceDataset
from strokeseg.data.preprocessing import Preprocessing
from strokeseg.errors import StrokesegError


@pytest.fixture
def dataset(tmp_path):
    for n in (1, 2):
        image, mask = volume_and_mask(seed=n)
        anat = tmp_path / "data" / f"sub-{n}" / "ses-1" / "anat"
        stem = f"sub-{n}_ses-1_space-MNI152NLin2009aSym"
        write_nifti(anat / f"{stem}_T1w.nii.gz", image)
        write_nifti(anat / f"{stem}_label-L_desc-T1lesion_mask.nii.gz", mask)
    return find_dataset(tmp_path / "data")


def test_cache_holds_normalized_cropped_slices_and_lesion_counts(dataset, tmp_path):
    cache = SliceCache.build(dataset, ["sub-1", "sub-2"], tmp_path / "cache")
    assert len(cache) == 16  # 2 subjects x 8 axial slices
    _, mask = volume_and_mask(seed=2)
    # the cube lies inside the 16 x 16 centre crop, so each slice keeps all its lesion voxels
    np.testing.assert_array_equal(cache.lesion_voxels[8:], mask.sum(axis=(0, 1)))

    sample = SliceDataset(cache)[8 + 3]
    image, _ = volume_and_mask(seed=2)
    expected = to_slices(normalize(image, "mri"))[3]
    assert sample["image"].shape == (1, 16, 16) and sample["image"].dtype == torch.float32
    np.testing.assert_allclose(sample["image"][0].numpy(), expected, atol=1e-3)  # float16 store
    np.testing.assert_array_equal(sample["mask"][0].numpy(), to_slices(mask)[3])


def test_slice_stride_keeps_every_kth_slice_of_each_subject(dataset, tmp_path):
    cache = SliceCache.build(dataset, ["sub-1", "sub-2"], tmp_path / "cache")
    dataset3 = SliceDataset(cache, ["sub-2"], slice_stride=3)
    assert [tuple(r) for r in dataset3.rows] == [(1, 0), (1, 3), (1, 6)]
    _, mask = volume_and_mask(seed=2)
    np.testing.assert_array_equal(dataset3[1]["mask"][0].numpy(), to_slices(mask)[3])


def test_cache_reused_while_valid_and_rebuilt_on_change(dataset, tmp_path, monkeypatch):
    SliceCache.build(dataset, ["sub-1"], tmp_path / "cache")
    calls = []
    import strokeseg.data.cache as cache_module

    real = cache_module.load_subject
    monkeypatch.setattr(cache_module, "load_subject", lambda s: calls.append(s.id) or real(s))
    SliceCache.build(dataset, ["sub-1"], tmp_path / "cache")
    assert calls == []
    SliceCache.build(dataset, ["sub-1"], tmp_path / "cache", Preprocessing("mri", "stroke"))
    assert calls == ["sub-1"]
    stat = dataset.subjects[0].image.stat()
    os.utime(dataset.subjects[0].image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    SliceCache.build(dataset, ["sub-1"], tmp_path / "cache")
    assert calls == ["sub-1", "sub-1"]
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]


def test_lesion_oversampling_reaches_the_requested_fraction(dataset, tmp_path):
    cache = SliceCache.build(dataset, ["sub-1", "sub-2"], tmp_path / "cache")
    plain = SliceDataset(cache)
    assert plain.sampler() is None
    assert plain.has_lesion.mean() == pytest.approx(3 / 8)
    data = SliceDataset(cache, subject_ids=["sub-2"], lesion_fraction=0.8)
    assert len(data) == 8
    torch.manual_seed(0)
    drawn = list(data.sampler(num_samples=4000))
    assert np.mean(data.has_lesion[drawn]) == pytest.approx(0.8, abs=0.03)


def test_subject_balance_gives_each_subject_an_equal_share_of_the_lesion_draws(tmp_path):
    # sub-1's lesion spans 1 axial slice, sub-2's 6 of the 8, sub-3 has none
    for n, (z0, z1) in {1: (3, 4), 2: (1, 7), 3: (0, 0)}.items():
        image, mask = volume_and_mask(seed=n)
        mask[:] = 0
        mask[5:9, 6:11, z0:z1] = 1
        anat = tmp_path / "data" / f"sub-{n}" / "ses-1" / "anat"
        stem = f"sub-{n}_ses-1_space-MNI152NLin2009aSym"
        write_nifti(anat / f"{stem}_T1w.nii.gz", image)
        write_nifti(anat / f"{stem}_label-L_desc-T1lesion_mask.nii.gz", mask)
    ids = ["sub-1", "sub-2", "sub-3"]
    cache = SliceCache.build(find_dataset(tmp_path / "data"), ids, tmp_path / "cache")

    def shares(balance: str) -> dict[int, float]:
        data = SliceDataset(cache, lesion_fraction=0.6, lesion_balance=balance)
        weights = np.array(data.sampler().weights)
        total = weights.sum()
        lesion = {
            s: weights[data.has_lesion & (data.rows[:, 0] == s)].sum() / total for s in (0, 1)
        }
        # the 17 slices without lesion (7 + 2 + 8) share the rest alike
        assert np.allclose(weights[~data.has_lesion] / total, 0.4 / 17)
        return lesion

    by_slice, by_subject = shares("slice"), shares("subject")
    assert by_slice[0] == pytest.approx(0.6 * 1 / 7) and by_slice[1] == pytest.approx(0.6 * 6 / 7)
    assert by_subject[0] == pytest.approx(0.3) and by_subject[1] == pytest.approx(0.3)


def test_augmentation_keeps_shapes_binary_masks_and_is_seeded(dataset, tmp_path):
    cache = SliceCache.build(dataset, ["sub-1", "sub-2"], tmp_path / "cache")
    data = SliceDataset(cache, augment=True)
    torch.manual_seed(3)
    first = [data[i] for i in range(16)]
    torch.manual_seed(3)
    again = [data[i] for i in range(16)]
    for a, b in zip(first, again, strict=True):
        assert type(a["image"]) is torch.Tensor and a["image"].shape == (1, 16, 16)
        assert set(a["mask"].unique().tolist()) <= {0.0, 1.0}
        torch.testing.assert_close(a["image"], b["image"])
    plain = [SliceDataset(cache)[i]["image"] for i in range(16)]
    assert any(not torch.equal(a["image"], p) for a, p in zip(first, plain, strict=True))


def test_loader_workers_reopen_the_memory_maps(dataset, tmp_path):
    cache = SliceCache.build(dataset, ["sub-1", "sub-2"], tmp_path / "cache")
    data = SliceDataset(cache)
    _ = data[0]
    assert len(pickle.dumps(cache)) < 4000  # no array copied into the pickle
    batches = list(DataLoader(data, batch_size=4, num_workers=2))
    assert torch.cat([b["mask"] for b in batches]).sum() == cache.lesion_voxels.sum()


def test_cache_refuses_unlabeled_and_unknown_subjects(dataset, tmp_path):
    dataset.subjects[0].masks = []
    with pytest.raises(StrokesegError, match="sub-1 has no mask"):
        SliceCache.build(dataset, ["sub-1"], tmp_path / "cache")
    with pytest.raises(StrokesegError, match="unknown subject ids sub-9"):
        SliceCache.build(dataset, ["sub-9"], tmp_path / "cache")


def _find_window(full: np.ndarray, patch: np.ndarray) -> tuple[int, int] | None:
    p = patch.shape[0]
    for y in range(full.shape[0] - p + 1):
        for x in range(full.shape[1] - p + 1):
            if np.array_equal(full[y : y + p, x : x + p], patch):
                return y, x
    return None


def test_patches_are_aligned_windows_centred_on_lesion_half_the_time(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.random((64, 64, 2)).astype(np.float32)
    mask = np.zeros((64, 64, 2), dtype=np.uint8)
    mask[2:5, 3:6, 0] = 1  # a small lesion in a corner of slice 0; slice 1 has none
    write_nifti(tmp_path / "data" / "images" / "a.nii.gz", image)
    write_nifti(tmp_path / "data" / "masks" / "a.nii.gz", mask)
    cache = SliceCache.build(find_dataset(tmp_path / "data"), ["a"], tmp_path / "cache")
    whole = SliceDataset(cache)
    patches = SliceDataset(cache, patch_size=32)
    full_image, full_mask = whole[0]["image"][0].numpy(), whole[0]["mask"][0].numpy()
    hits = 0
    for _ in range(40):
        sample = patches[0]
        assert sample["image"].shape == sample["mask"].shape == (1, 32, 32)
        where = _find_window(full_image, sample["image"][0].numpy())
        assert where is not None, "a patch is a window of the slice"
        y, x = where
        np.testing.assert_array_equal(sample["mask"][0].numpy(), full_mask[y : y + 32, x : x + 32])
        hits += bool(sample["mask"].sum())
    # a random 32x32 window of a 64x64 slice holds this corner lesion about 1 time in 10;
    # lesion-centred crops (half of the draws) always do
    assert 14 <= hits <= 36
    assert patches[1]["image"].shape == (1, 32, 32)
    torch.manual_seed(3)
    first = patches[0]["image"]
    torch.manual_seed(3)
    assert torch.equal(first, patches[0]["image"])
    with pytest.raises(StrokesegError, match="multiple of 16"):
        SliceDataset(cache, patch_size=40)
