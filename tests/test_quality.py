"""What makes the models learn and the inference side strong.

Init (against the He formula), the ATLAS-shaped volume draw (against its own fitted figures,
computed by hand here), the LFFGM size refusal, deep supervision, 2.5D stacking, augmentation
alignment, post-processing, TTA, and a training run that must actually learn.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi
from scipy.stats import norm

import strokeseg
from strokeseg.data.io import Volume
from strokeseg.data.preprocessing import Preprocessing, TrainingData
from strokeseg.data.slices import stack_context
from strokeseg.errors import StrokesegError
from strokeseg.evaluation.metrics import lesion_f1
from strokeseg.inference.engine import Predictor, resolve_device
from strokeseg.inference.options import InferenceOptions
from strokeseg.inference.postprocess import RAW, Postprocess, apply, choose, false_lesion_ml
from strokeseg.models.multitask import SegmentLoss, build_loss
from strokeseg.synth.lesions import ATLAS_R2, LOG_UNIFORM
from strokeseg.training.config import load_config
from strokeseg.training.run import check_model

# --- initialisation: he_normal as the official Keras UNet++ ---------------------------------


@pytest.mark.parametrize("name", ["unetpp", "unetpp_mtl"])
def test_every_conv_starts_he_normal_with_zero_bias(name):
    model = strokeseg.create_model(name)  # full width, the paper's network
    checked = 0
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d) and m.weight.numel() >= 2000:
            fan_in = m.weight[0].numel()
            assert m.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.1)
            checked += 1
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and m.bias is not None:
            assert torch.count_nonzero(m.bias) == 0
    assert checked >= 29  # every 3x3 conv but the first (its 288 weights give a noisy std)
    for m in model.modules():  # Keras' default glorot_uniform on Conv2DTranspose
        if isinstance(m, torch.nn.ConvTranspose2d):
            limit = math.sqrt(6 / (4 * m.in_channels + 4 * m.out_channels))
            assert m.weight.abs().max() <= limit
            assert m.weight.abs().max() > 0.9 * limit


def test_full_width_logits_at_init_are_not_vanishing():
    # PyTorch's default init gave logits with std ~2e-3 at full width; He init about 0.1-1
    logits = strokeseg.create_model("unetpp", dropout=0.0).eval()(torch.randn(1, 1, 64, 64))
    assert logits.std().item() > 0.05


def test_l2_penalty_reaches_conv_kernels_only(tmp_path):
    from strokeseg.training.module import SegmentationModule

    config = load_config(None, ["model.name=unetpp", "model.kwargs.width=0.125", "optim.l2=1e-4"])
    module = SegmentationModule(config)
    groups = module.parameter_groups()
    assert groups[0]["weight_decay"] == pytest.approx(2e-4)  # d/dw of 1e-4 * w^2
    assert all(p.dim() == 4 for p in groups[0]["params"])
    transposed = {
        id(m.weight) for m in module.model.modules() if isinstance(m, torch.nn.ConvTranspose2d)
    }
    assert not transposed & {id(p) for p in groups[0]["params"]}
    assert groups[1]["weight_decay"] == 0


# --- SynthATLAS volumes: a truncated log-normal fitted to ATLAS R2.0 --------------------------


def test_atlas_volume_draws_match_the_fitted_figures():
    rng = np.random.default_rng(7)
    draws = np.array([ATLAS_R2.draw(rng) for _ in range(40_000)])
    assert np.median(draws) == pytest.approx(5_000, rel=0.05)  # the published median, 5 mL
    # by hand: P(V < 1 mL) = Phi(ln(1/5) / 1.74) = 0.1779, renormalised for the truncation
    low, high = norm.cdf(math.log(10 / 5000) / 1.74), norm.cdf(math.log(2.8e5 / 5000) / 1.74)
    under_1ml = (norm.cdf(math.log(1000 / 5000) / 1.74) - low) / (high - low)
    assert (draws < 1000).mean() == pytest.approx(under_1ml, abs=0.01)
    assert 0.15 < under_1ml < 0.2  # "well under a fifth"
    q90 = 5000 * math.exp(1.74 * norm.ppf(low + 0.9 * (high - low)))
    assert np.quantile(draws, 0.9) == pytest.approx(q90, rel=0.06)
    assert draws.min() >= 10 and draws.max() <= 2.8e5


def test_old_log_uniform_draw_stays_reachable():
    rng = np.random.default_rng(3)
    draws = np.array([LOG_UNIFORM.draw(rng) for _ in range(20_000)])
    assert np.median(draws) == pytest.approx(math.sqrt(10 * 2.8e5), rel=0.06)  # 1.67 mL
    assert (draws < 1000).mean() == pytest.approx(math.log(100) / math.log(2.8e4), abs=0.015)


# --- LFFGM input size ----------------------------------------------------------------------


@pytest.mark.parametrize("model", ["unetpp_mtl", "unetpp_lffgm"])
def test_lffgm_models_refuse_patches_under_128(model):
    config = load_config("demo", [f"model.name={model}", "data.patch_size=64"])
    with pytest.raises(StrokesegError, match="at least 128x128"):
        check_model(config)
    check_model(load_config("demo", [f"model.name={model}", "data.patch_size=128"]))


def test_models_without_lffgm_accept_small_patches():
    check_model(load_config("demo", ["model.name=unetpp_edge", "data.patch_size=64"]))


def test_cli_refuses_small_lffgm_patch_before_writing(cli, tmp_path):
    out = tmp_path / "run"
    result = cli(
        "train", "--config", "demo", "--data", tmp_path, "--out", out, "--set", "data.patch_size=64"
    )
    assert result.returncode != 0
    assert "LFFGM" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


# --- deep supervision -----------------------------------------------------------------------


def test_deep_supervision_heads_train_only_and_deploy_to_plain_unetpp():
    model = strokeseg.create_model("unetpp_mtl", width=0.125, deep_supervision=True).train()
    out = model(torch.randn(2, 1, 64, 64))
    assert [d.shape for d in out["deep"]] == [(2, 1, 64, 64)] * 3
    deployed = strokeseg.deploy(model)
    plain = strokeseg.create_model("unetpp", width=0.125)
    assert {k: v.shape for k, v in deployed.state_dict().items()} == {
        k: v.shape for k, v in plain.state_dict().items()
    }


def test_deep_supervision_loss_is_the_mean_over_the_four_heads():
    y = (torch.rand(2, 1, 32, 32) > 0.7).float()
    heads = [torch.randn(2, 1, 32, 32) for _ in range(4)]
    loss = build_loss("unetpp")
    got = loss({"mask": heads[3], "deep": heads[:3]}, y)["loss_mask"]
    segment = SegmentLoss()
    assert got.item() == pytest.approx(np.mean([segment(h, y).item() for h in heads]), rel=1e-6)


# --- 2.5D context ---------------------------------------------------------------------------


def test_context_channels_run_inferior_to_superior_with_zeros_past_the_ends():
    slices = np.arange(1, 6, dtype=np.float32)[:, None, None] * np.ones((5, 2, 3), np.float32)
    out = stack_context(slices, np.array([0, 2, 4]), 1)
    assert out.shape == (3, 3, 2, 3)
    assert out[:, :, 0, 0].tolist() == [[0, 1, 2], [2, 3, 4], [4, 5, 0]]
    two = stack_context(slices, np.array([0]), 2)[0, :, 0, 0].tolist()
    assert two == [0, 0, 1, 2, 3]


def test_context_sets_the_input_channels(tmp_path):
    assert load_config("tiny", ["data.context_slices=2"]).model_kwargs()["in_channels"] == 5
    with pytest.raises(StrokesegError, match="context_slices"):
        load_config("tiny", ["data.context_slices=1", "model.kwargs.in_channels=1"]).model_kwargs()


# --- augmentation moves image and mask together ---------------------------------------------


def test_spatial_augmentation_keeps_image_and_mask_aligned():
    from strokeseg.data.augment import augmentation

    rng = np.random.default_rng(0)
    mask = np.zeros((1, 96, 96), np.float32)
    mask[0, 20:50, 30:70] = 1
    mask[0, 60:80, 10:30] = 1
    transform = augmentation()
    moved = 0
    for seed in range(40):
        transform.set_random_state(seed=seed)
        image = mask + rng.normal(0, 0.01, mask.shape).astype(np.float32)  # image = mask + noise
        out = transform({"image": torch.from_numpy(image), "mask": torch.from_numpy(mask)})
        img, msk = np.asarray(out["image"])[0], np.asarray(out["mask"])[0] > 0.5
        assert set(np.unique(np.asarray(out["mask"]))) <= {0.0, 1.0}  # nearest for the mask
        if not np.array_equal(msk, mask[0] > 0.5):
            moved += 1
        # wherever the mask says lesion, the image is brighter than where it says background
        if msk.any() and (~msk).any():
            assert np.median(img[msk]) > np.median(img[~msk]) + 0.3 * (img.max() - img.min())
        inside = ndi.binary_erosion(msk, iterations=2)
        if inside.any():  # away from the border, bilinear image and nearest mask agree
            assert np.median(img[inside]) > np.median(img[~ndi.binary_dilation(msk, iterations=2)])
    assert moved >= 10  # the spatial transforms did act


# --- post-processing ------------------------------------------------------------------------


def two_component_case():
    prob = np.zeros((20, 20, 20), np.float32)
    prob[2:7, 2:7, 2:7] = 0.9  # large true lesion: 125 voxels
    prob[15:17, 15:17, 15:17] = 0.8  # small false positive: 8 voxels
    gt = np.zeros_like(prob, dtype=bool)
    gt[2:7, 2:7, 2:7] = True
    return prob, gt


def test_min_lesion_volume_removes_the_small_component_only():
    prob, gt = two_component_case()
    assert apply(prob, 1.0, RAW).sum() == 133
    kept = apply(prob, 2.0, Postprocess(0.5, 20.0))  # 8 voxels x 2 mm3 = 16 mm3 < 20
    assert kept.sum() == 125 and np.array_equal(kept.astype(bool), gt)
    assert apply(prob, 1.0, Postprocess(0.85, 0.0)).sum() == 125  # threshold alone


def test_false_lesion_volume_counts_components_that_touch_no_lesion():
    gt = np.zeros((12, 12, 12), bool)
    gt[2:5, 2:5, 2:5] = True
    prob = np.zeros(gt.shape, np.float32)
    prob[3:7, 3:5, 3:5] = 0.9  # touches the lesion: 16 voxels, not false
    prob[8:11, 8:11, 8:10] = 0.9  # 18 voxels apart: false
    prob[11, 11, 11] = 0.6  # one voxel, corner-connected to nothing else: false
    assert false_lesion_ml(prob, gt, 2.0, RAW) == pytest.approx(19 * 2.0 / 1000)
    assert false_lesion_ml(prob, gt, 2.0, Postprocess(0.7, 0.0)) == pytest.approx(18 * 2 / 1000)
    assert false_lesion_ml(prob, gt, 2.0, Postprocess(0.5, 40.0)) == 0.0  # 36 mm3 < 40
    assert false_lesion_ml(np.zeros_like(prob), gt, 2.0, RAW) == 0.0


def test_choose_picks_the_size_limit_that_removes_the_false_positive():
    prob, gt = two_component_case()
    rule, score, raw = choose([(prob, gt, 1.0)], [0.5], [0.0, 10.0, 200.0])
    assert rule == Postprocess(0.5, 10.0)  # 8 voxels < 10 mm3 < 125 voxels; 200 drops both
    assert score == pytest.approx({"dice": 1.0, "f1": 1.0})
    # by hand: Dice 2*125 / (133 + 125); F1 2*1 / (2*1 + 1 false positive + 0 missed)
    assert raw == pytest.approx({"dice": 2 * 125 / (133 + 125), "f1": 2 / 3})


def test_dice_f1_objective_trades_a_little_dice_for_fewer_false_positives():
    # A true lesion of 125 voxels at p 0.9 with a true 25-voxel rim at p 0.4, a 2-voxel
    # false-positive speck at p 0.4 and a 1-voxel true lesion nobody finds.
    prob = np.zeros((20, 20, 20), np.float32)
    prob[2:7, 2:7, 2:7] = 0.9
    prob[7, 2:7, 2:7] = 0.4
    prob[15, 15, 15:17] = 0.4
    gt = np.zeros_like(prob, dtype=bool)
    gt[2:8, 2:7, 2:7] = True
    gt[12, 12, 12] = True
    cases = [(prob, gt, 1.0)]
    by_dice, dice_scores, _ = choose(cases, [0.3, 0.5], [0.0])
    by_both, both_scores, _ = choose(cases, [0.3, 0.5], [0.0], objective="dice_f1")
    # threshold 0.3: Dice 2*150 / (152 + 151), F1 2*1 / (2 + 1 false positive + 1 missed)
    # threshold 0.5: Dice 2*125 / (125 + 151), F1 2*1 / (2 + 0 + 1)
    assert by_dice == Postprocess(0.3, 0.0)
    assert dice_scores == pytest.approx({"dice": 300 / 303, "f1": 0.5})
    assert by_both == Postprocess(0.5, 0.0)
    assert both_scores == pytest.approx({"dice": 250 / 276, "f1": 2 / 3})


def test_choose_scores_equal_the_evaluation_metrics():
    """The Dice and F1 that choose reports (for its rule and the plain one), from its own
    component bookkeeping, equal what the evaluation computes on the post-processed masks
    (an independent path: apply, then Dice and lesion_f1)."""
    rng = np.random.default_rng(3)
    prob = ndi.gaussian_filter(rng.random((24, 24, 24)), 1.5).astype(np.float32)
    prob = (prob - prob.min()) / (prob.max() - prob.min())
    gt = ndi.gaussian_filter(rng.random((24, 24, 24)), 1.5) > 0.52

    def metrics(rule):
        mask = apply(prob, 2.0, rule).astype(bool)
        dice = 2 * (mask & gt).sum() / (mask.sum() + gt.sum())
        return {"dice": dice, "f1": lesion_f1(mask, gt)}

    rules = set()
    for t in (0.45, 0.55, 0.65):
        for v in (0.0, 5.0, 40.0):
            for objective in ("dice", "dice_f1"):
                rule, scores, raw = choose([(prob, gt, 2.0)], [t], [v], objective)
                assert scores == pytest.approx(metrics(rule))
                assert raw == pytest.approx(metrics(RAW))
                rules.add(rule)
    assert len(rules) > 3  # the grid exercised several rules, not just the plain one


def test_choose_prefers_the_plain_rule_on_ties():
    prob, gt = two_component_case()
    prob[15:17, 15:17, 15:17] = 0
    rule, _, _ = choose([(prob, gt, 1.0)], [0.3, 0.5, 0.7], [0.0, 10.0])
    assert rule == RAW


# --- TTA and device ---------------------------------------------------------------------------


def test_tta_is_the_mean_of_the_slice_and_its_flip_passes():
    torch.manual_seed(1)
    net = strokeseg.deploy(strokeseg.create_model("unetpp", width=0.125, norm="batch"))
    data = np.random.default_rng(0).normal(100, 20, (32, 48, 3)).astype(np.float32)
    meta = {"data": TrainingData(Preprocessing())}

    def probabilities(data, tta="none"):
        predictor = Predictor([net], meta, InferenceOptions(tta=tta, runtime="eager", crop=True))
        return predictor.probabilities(predictor.prepare(Volume(None, data, np.eye(4), None)))

    plain = probabilities(data)
    tta = probabilities(data, tta="lr")
    flipped = probabilities(data[::-1].copy())
    # left-right is the RAS x axis: the flip pass on the flipped scan, flipped back
    assert np.allclose(tta, (plain + flipped[::-1]) / 2, atol=1e-6)
    assert not np.allclose(tta, plain, atol=1e-4)


def test_device_auto_is_the_cpu_here_and_cuda_is_refused():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(StrokesegError, match="no CUDA"):
        resolve_device("cuda")


# --- training learns ------------------------------------------------------------------------


def test_a_tiny_model_overfits_a_few_slices():
    """The init, loss and optimiser together must fit 4 fixed slices to Dice > 0.9 quickly."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    masks, images = [], []
    for _ in range(4):
        cy, cx, r = rng.integers(18, 46), rng.integers(18, 46), rng.integers(6, 12)
        m = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.float32)
        masks.append(m)
        images.append(0.6 - 0.3 * m + rng.normal(0, 0.05, m.shape))
    x = torch.tensor(np.array(images), dtype=torch.float32)[:, None]
    y = torch.tensor(np.array(masks))[:, None]
    torch.manual_seed(0)
    model = strokeseg.create_model("unetpp_mtl", width=0.125, norm="batch")
    loss = build_loss("unetpp_mtl")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)  # 0.95 at 100 steps, 0.99 at 150
    model.train()
    for _ in range(150):
        optimizer.zero_grad()
        loss(model(x), y)["loss"].backward()
        optimizer.step()
    with torch.no_grad():
        pred = strokeseg.deploy(model)(x) > 0
    dice = 2 * (pred & (y > 0.5)).sum() / (pred.sum() + (y > 0.5).sum())
    assert dice.item() > 0.9


def test_train_stores_the_post_processing_and_prediction_reads_it_back(
    tiny_run, tiny_dataset, tmp_path
):
    """``train`` (the shared tiny CLI run) stores the rule fitted on its validation subjects;
    a rule written into a copy of the checkpoint is the one a Predictor applies, and
    ``postprocess=False`` ignores it."""
    from strokeseg.data.layouts import find_dataset, load_subject
    from strokeseg.inference.checkpoint import read_checkpoint
    from strokeseg.inference.ensemble import load_predictor
    from strokeseg.inference.options import InferenceOptions

    state = read_checkpoint(tiny_run / "best.ckpt")
    record = state["strokeseg"]["postprocess"]
    config = load_config("tiny")
    assert record["threshold"] in {*config.postprocess.thresholds, 0.5}
    assert record["min_lesion_mm3"] in {*config.postprocess.min_lesion_mm3, 0.0}
    assert record["objective"] == config.postprocess.objective == "dice"
    assert record["val_subjects"] == 1  # tiny: 6 subjects split 0.6/0.2/0.2
    assert record["val_dice"] >= record["val_dice_raw"]  # the plain rule is a candidate
    assert record["val_false_lesion_ml_median"] >= 0.0

    volume, _ = load_subject(find_dataset(tiny_dataset).subjects[0])
    plain = load_predictor([tiny_run / "best.ckpt"], InferenceOptions(postprocess=False))[0]
    prob, raw, final = plain.masks(volume)
    assert np.array_equal(raw, final) and raw.any()
    keep = float(np.quantile(prob[raw.astype(bool)], 0.5))  # keeps about half the lesion
    state["strokeseg"]["postprocess"] = {**record, "threshold": keep, "min_lesion_mm3": 0.0}
    edited = tmp_path / "edited.ckpt"
    torch.save(state, edited)
    _, raw2, final2 = load_predictor([edited])[0].masks(volume)
    assert np.array_equal(raw2, raw)
    assert np.array_equal(final2.astype(bool), prob >= keep)
    assert 0 < final2.sum() < raw.sum()
