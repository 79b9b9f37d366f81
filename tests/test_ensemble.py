"""Fold ensembles: checkpoints found in folders, and one kind of data per ensemble."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from strokeseg.errors import StrokesegError
from strokeseg.inference.checkpoint import load_network
from strokeseg.inference.ensemble import checkpoint_files, load_ensemble
from strokeseg.models import create_model

KWARGS = {"width": 0.125, "norm": "batch"}


def write_checkpoint(path, seed: int, modality: str = "mri", window: str = "brain"):
    """A strokeseg checkpoint as training writes it (model description + state dict)."""
    torch.manual_seed(seed)  # distinct members: different random weights
    model = create_model("unetpp", **KWARGS)
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


def test_the_ensemble_probability_is_the_mean_of_its_members(tmp_path):
    from data_files import volume_and_mask, write_nifti

    from strokeseg.data.intensity import normalize
    from strokeseg.data.io import load_volume
    from strokeseg.data.slices import from_slices, to_slices
    from strokeseg.inference.engine import Predictor
    from strokeseg.inference.ensemble import ensemble_predictor

    members = [write_checkpoint(tmp_path / f"fold{i}" / "best.ckpt", i) for i in range(3)]
    volume = load_volume(write_nifti(tmp_path / "scan.nii.gz", volume_and_mask(0)[0]))
    singles = [Predictor.from_checkpoint(m).probabilities(volume) for m in members]
    mean = np.mean(singles, axis=0)
    predictor, files = ensemble_predictor([tmp_path])
    assert files == members
    ensemble = predictor.probabilities(volume)  # the folder: 3 folds
    np.testing.assert_allclose(ensemble, mean, rtol=0, atol=1e-6)
    # the members disagree at p = 0.5 somewhere, so the mean is none of them
    votes = np.stack([s >= 0.5 for s in singles])
    assert (votes.any(axis=0) & ~votes.all(axis=0)).any()
    # one member by hand: sigmoid of its logits on the normalised, zero-padded axial slices
    network, _ = load_network(members[0])
    slices = to_slices(normalize(volume.data, "mri", "brain"), pad=True)
    with torch.inference_mode():
        logits = network(torch.from_numpy(slices[:, None]).float())[:, 0].double().numpy()
    expected = from_slices(1 / (1 + np.exp(-logits)), volume.data.shape)
    np.testing.assert_allclose(singles[0], expected, atol=1e-5)


def test_predict_with_several_checkpoints_writes_the_mean_probability_mask(tmp_path, cli):
    import nibabel as nib
    from data_files import volume_and_mask, write_nifti

    from strokeseg.data.io import load_volume
    from strokeseg.inference.engine import Predictor

    a, b = (write_checkpoint(tmp_path / f"{n}.ckpt", i) for i, n in enumerate("ab"))
    scan = write_nifti(tmp_path / "in" / "scan.nii.gz", volume_and_mask(1)[0])
    result = cli("predict", "-i", scan, "-o", tmp_path / "out", "--checkpoint", a,
                 "--checkpoint", b)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    volume = load_volume(scan)
    mean = np.mean([Predictor.from_checkpoint(c).probabilities(volume) for c in (a, b)], axis=0)
    written = np.asarray(nib.load(tmp_path / "out" / "scan_mask.nii.gz").dataobj)
    np.testing.assert_array_equal(written, (mean >= 0.5).astype(np.uint8))
