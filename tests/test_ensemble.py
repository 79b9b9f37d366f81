"""Fold ensembles: checkpoints found in folders, one preprocessing, the mean probability."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from data_files import volume_and_mask, write_nifti

from strokeseg.data.intensity import normalize
from strokeseg.data.io import load_volume
from strokeseg.data.slices import from_slices, to_slices
from strokeseg.errors import StrokesegError
from strokeseg.inference.checkpoint import load_network
from strokeseg.inference.ensemble import checkpoint_files, load_ensemble, load_predictor
from strokeseg.inference.options import InferenceOptions
from strokeseg.models import create_model

KWARGS = {"width": 0.125, "norm": "batch"}


def write_checkpoint(
    path, seed: int, modality: str = "mri", window: str = "brain", rule: dict | None = None
):
    """A strokeseg checkpoint as training writes it (model description + state dict, and the
    post-processing ``rule`` that training's end stores)."""
    torch.manual_seed(seed)  # distinct members: different random weights
    model = create_model("unetpp", **KWARGS)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    meta = {
        "version": "test",
        "model_name": "unetpp",
        "model_kwargs": KWARGS,
        "data": {"layout": "folders", "modality": modality, "window": window},
        "config": {},
        **({"postprocess": rule} if rule else {}),
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


def member_probabilities(checkpoint, volume) -> np.ndarray:
    """One member's lesion probability by hand: sigmoid of its logits on the normalised,
    zero-padded axial slices, pasted back into the volume."""
    network, meta = load_network(checkpoint)
    modality = meta["data"].preprocessing.modality
    slices = to_slices(normalize(volume.data, modality, "brain"), pad=True)
    with torch.inference_mode():
        logits = network(torch.from_numpy(slices[:, None]).float())[:, 0].double().numpy()
    return from_slices(1 / (1 + np.exp(-logits)), volume.data.shape)


def test_the_ensemble_probability_is_the_mean_of_its_members(tmp_path):
    members = [write_checkpoint(tmp_path / f"fold{i}" / "best.ckpt", i) for i in range(3)]
    volume = load_volume(write_nifti(tmp_path / "scan.nii.gz", volume_and_mask(0)[0]))
    singles = [member_probabilities(m, volume) for m in members]
    whole = InferenceOptions(crop=False)
    predictor, files = load_predictor([tmp_path], whole)  # the folder: its 3 folds
    assert files == members and len(predictor.networks) == 3
    ensemble = predictor.probabilities(predictor.prepare(volume))
    np.testing.assert_allclose(ensemble, np.mean(singles, axis=0), rtol=0, atol=1e-5)
    # the members disagree at p = 0.5 somewhere, so the mean is none of them
    votes = np.stack([s >= 0.5 for s in singles])
    assert (votes.any(axis=0) & ~votes.all(axis=0)).any()
    # an ensemble of one is that checkpoint
    one = load_predictor([members[0]], whole)[0]
    single = one.probabilities(one.prepare(volume))
    np.testing.assert_allclose(single, singles[0], rtol=0, atol=1e-5)


def test_predict_and_evaluate_with_several_checkpoints(tmp_path, cli):
    a, b = (write_checkpoint(tmp_path / f"{n}.ckpt", i) for i, n in enumerate("ab"))
    image, mask = volume_and_mask(1)
    scan = write_nifti(tmp_path / "data" / "images" / "case0.nii.gz", image)
    write_nifti(tmp_path / "data" / "masks" / "case0.nii.gz", mask)
    result = cli("predict", "-i", scan, "-o", tmp_path / "out", "--checkpoint", a,
                 "--checkpoint", b, "--no-crop")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    volume = load_volume(scan)
    mean = np.mean([member_probabilities(c, volume) for c in (a, b)], axis=0)
    written = np.asarray(nib.load(tmp_path / "out" / "case0_mask.nii.gz").dataobj)
    assert 0 < (mean >= 0.5).sum() < mean.size  # a threshold that decides something
    np.testing.assert_array_equal(written, (mean >= 0.5).astype(np.uint8))
    # evaluate: an ensemble has no one test split, so it needs --subjects all or --split
    args = ["evaluate", "--checkpoint", a, "--checkpoint", b, "--data", tmp_path / "data",
            "--no-crop"]  # fmt: skip
    refused = cli(*args, "--out", tmp_path / "eval")
    assert refused.returncode == 1 and "no one test split" in refused.stderr
    assert not (tmp_path / "eval").exists()
    scored = cli(*args, "--subjects", "all", "--out", tmp_path / "eval")
    assert scored.returncode == 0, scored.stderr[-2000:]
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text(encoding="utf-8"))
    assert summary["checkpoint"] == [str(a), str(b)] and summary["crop"] is False
    expected = 2 * ((mean >= 0.5) & (mask == 1)).sum() / ((mean >= 0.5).sum() + mask.sum())
    assert summary["dice_mean"] == pytest.approx(expected)


def test_fold_rules_become_their_median_and_a_member_without_one_drops_it(tmp_path):
    rules = [(0.4, 400.0), (0.3, 800.0), (0.3, 400.0), (0.5, 0.0)]
    members = [
        write_checkpoint(tmp_path / f"f{i}.ckpt", i, rule={"threshold": t, "min_lesion_mm3": m})
        for i, (t, m) in enumerate(rules)
    ]
    rule = load_ensemble(members)[1]["postprocess"]
    # medians of {0.3, 0.3, 0.4, 0.5} and {0, 400, 400, 800}, counted by hand
    assert (rule["threshold"], rule["min_lesion_mm3"]) == (pytest.approx(0.35), 400.0)
    predictor = load_predictor(members[:3])[0]
    assert (predictor.rule.threshold, predictor.rule.min_lesion_mm3) == (0.3, 400.0)
    same = [
        write_checkpoint(
            tmp_path / f"s{i}.ckpt", i, rule={"threshold": 0.6, "min_lesion_mm3": 50.0}
        )
        for i in range(2)
    ]
    assert load_ensemble(same)[1]["postprocess"] == {"threshold": 0.6, "min_lesion_mm3": 50.0}
    bare = write_checkpoint(tmp_path / "bare.ckpt", 9)
    assert "postprocess" not in load_ensemble([*members, bare])[1]
