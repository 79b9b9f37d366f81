"""K-fold cross-validation folds: a stratified partition, the same for every run."""

from __future__ import annotations

import numpy as np
import pytest

from strokeseg.data.folds import fold_split, load_folds, make_folds, save_folds, val_share
from strokeseg.errors import StrokesegError

IDS = [f"sub{i:02d}" for i in range(23)]
VOLUMES = {
    s: float(v) for s, v in zip(IDS, np.random.default_rng(5).permutation(23) * 100, strict=True)
}


@pytest.mark.parametrize("k", [2, 5])
def test_folds_partition_the_subjects_and_every_subject_is_tested_once(k):
    folds = make_folds(IDS, k, seed=0, volumes=VOLUMES)
    assert len(folds) == k
    assert sorted(s for f in folds for s in f) == sorted(IDS)  # each subject in one fold
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    tested = []
    for i in range(k):
        split = fold_split(folds, i, 0.25, 0, VOLUMES)
        assert split["test"] == folds[i]
        assert not set(split["train"]) & set(split["val"]) | set(split["train"]) & set(folds[i])
        assert sorted(split["train"] + split["val"] + split["test"]) == sorted(IDS)
        assert len(split["val"]) == round(0.25 * (len(IDS) - len(folds[i])))
        tested += split["test"]
    assert sorted(tested) == sorted(IDS)


def test_folds_are_stratified_by_lesion_volume():
    k = 5
    folds = make_folds(IDS, k, seed=1, volumes=VOLUMES)
    ranked = sorted(IDS, key=VOLUMES.get)
    fold_of = {s: i for i, f in enumerate(folds) for s in f}
    # every block of K subjects of neighbouring volume is spread over K different folds
    for start in range(0, len(ranked) - k + 1, k):
        assert len({fold_of[s] for s in ranked[start : start + k]}) == k
    # so every fold spans small to large lesions
    for f in folds:
        assert min(VOLUMES[s] for s in f) < 500 and max(VOLUMES[s] for s in f) >= 1500


def test_folds_depend_only_on_subjects_volumes_k_and_seed(tmp_path):
    folds = make_folds(IDS, 5, 0, VOLUMES)
    assert make_folds(IDS[::-1], 5, 0, VOLUMES) == folds  # any listing order
    assert make_folds(IDS, 5, 1, VOLUMES) != folds  # another seed, other folds
    path = save_folds(folds, 0, tmp_path / "folds.json")
    assert load_folds(path) == folds
    save_folds(folds, 0, path)  # the same folds again: fine
    with pytest.raises(StrokesegError, match="other folds"):
        save_folds(make_folds(IDS, 5, 1, VOLUMES), 1, path)


def test_val_share_from_the_split_and_bad_fold_settings():
    assert val_share([0.6, 0.2, 0.2]) == pytest.approx(0.25)
    assert val_share([120, 40, 60]) == pytest.approx(0.25)
    assert val_share([40, 0, 5]) == 0.0
    folds = make_folds(IDS, 3, 0, VOLUMES)
    assert fold_split(folds, 0, 0.0, 0, VOLUMES)["val"] == []
    with pytest.raises(StrokesegError, match="--fold 3"):
        fold_split(folds, 3, 0.25, 0, VOLUMES)
    with pytest.raises(StrokesegError, match="--folds 30"):
        make_folds(IDS, 30, 0, VOLUMES)
    with pytest.raises(StrokesegError, match="--folds 1"):
        make_folds(IDS, 1, 0, VOLUMES)


def test_fold_settings_go_together_and_in_range():
    from strokeseg.data.folds import check_fold

    check_fold(None, None)
    check_fold(5, 4)
    check_fold(5, None, every_fold=True)  # a benchmark runs every fold
    with pytest.raises(StrokesegError, match="--folds 5 needs --fold I"):
        check_fold(5, None)
    with pytest.raises(StrokesegError, match="--fold 0 needs --folds K"):
        check_fold(None, 0, every_fold=True)
    with pytest.raises(StrokesegError, match=r"--fold 5 must be in 0\.\.4 for --folds 5"):
        check_fold(5, 5)
    with pytest.raises(StrokesegError, match=r"--fold -1 must be in 0\.\.4"):
        check_fold(5, -1)
