"""Fold ensembles: checkpoints found in folders, and one kind of data per ensemble."""

from __future__ import annotations

import pytest
import torch

from strokeseg.errors import StrokesegError
from strokeseg.inference.ensemble import checkpoint_files, load_ensemble
from strokeseg.models import create_model

KWARGS = {"width": 0.125, "norm": "batch"}


def write_checkpoint(path, seed: int, modality: str = "mri", window: str = "brain"):
    """A strokeseg checkpoint as training writes it (model description + state dict)."""
    torch.manual_seed(seed)
    model = create_model("unetpp", **KWARGS)
    for p in model.parameters():  # distinct members: different random weights
        p.data.normal_(0, 0.3)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    meta = {
        "version": "test",
        "model_name": "unetpp",
        "model_kwargs": KWARGS,
        "data": {"layout": "folders", "modality": modality, "window": window},
        "config": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, "strokeseg": meta}, path)
    return path


def test_a_cv_folder_gives_the_best_checkpoint_of_every_fold(tmp_path):
    seed_dir = tmp_path / "bench" / "unetpp" / "seed0"
    folds = [write_checkpoint(seed_dir / f"fold{i}" / "run" / "best.ckpt", i) for i in range(3)]
    write_checkpoint(seed_dir / "fold0" / "run" / "last.ckpt", 9)  # not a member
    assert checkpoint_files([seed_dir]) == folds
    single = tmp_path / "single.ckpt"
    write_checkpoint(single, 5)
    assert checkpoint_files([single, seed_dir / "fold1" / "run"]) == [single, folds[1]]
    networks, meta, files = load_ensemble([seed_dir])
    assert len(networks) == 3 and files == folds and meta["model_name"] == "unetpp"
    with pytest.raises(StrokesegError, match="given twice"):
        checkpoint_files([seed_dir, folds[0]])
    (tmp_path / "empty").mkdir()
    with pytest.raises(StrokesegError, match="no best.ckpt"):
        checkpoint_files([tmp_path / "empty"])


def test_members_trained_on_other_data_are_refused(tmp_path):
    mri = write_checkpoint(tmp_path / "a.ckpt", 0)
    ct = write_checkpoint(tmp_path / "b.ckpt", 1, modality="ct")
    with pytest.raises(StrokesegError, match="modality 'ct' differs"):
        load_ensemble([mri, ct])
    with pytest.raises(StrokesegError, match="checkpoint not found"):
        load_ensemble([mri, tmp_path / "missing.ckpt"])
