"""Eq. 2-4 and the edge target checked against independent implementations (MONAI, SciPy)
on random inputs, not only on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.losses import DiceCELoss
from scipy import ndimage

from strokeseg.models.multitask import SegmentLoss, edge_target, soft_dice_loss


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("alpha", "beta", "smooth"), [(1.0, 1.0, 1e-5), (2.0, 0.5, 1.0)])
def test_eq_2_to_4_equal_monais_dice_ce_loss(seed, alpha, beta, smooth):
    """Mapping: alpha = lambda_dice, beta = lambda_ce, smooth = smooth_nr = smooth_dr. MONAI's
    batch=True sums the Dice terms over the batch and the pixels (our one Dice over the whole
    batch), and with sigmoid=True on one channel its CE is BCE-with-logits, mean over pixels."""
    g = torch.Generator().manual_seed(seed)
    batch, size = 1 + seed, 8 + 4 * seed
    logits = torch.randn(batch, 1, size, size + 3, generator=g) * 3
    target = (torch.rand(batch, 1, size, size + 3, generator=g) < 0.2).float()
    monai = DiceCELoss(
        sigmoid=True,
        batch=True,
        smooth_nr=smooth,
        smooth_dr=smooth,
        lambda_dice=alpha,
        lambda_ce=beta,
    )
    ours = SegmentLoss(alpha=alpha, beta=beta, smooth=smooth)(logits, target)
    torch.testing.assert_close(ours, monai(logits, target), rtol=1e-6, atol=1e-6)
    dice_only = DiceCELoss(
        sigmoid=True, batch=True, smooth_nr=smooth, smooth_dr=smooth, lambda_ce=0.0
    )
    torch.testing.assert_close(
        soft_dice_loss(logits, target, smooth), dice_only(logits, target), rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("seed", range(3))
def test_per_sample_dice_equals_monais_dice_ce_loss_without_batch(seed):
    """``loss.dice: sample``: MONAI's batch=False takes one Dice per sample (and channel) and
    averages the losses, with an empty sample included."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(3 + seed, 1, 12, 9, generator=g) * 3
    target = (torch.rand(3 + seed, 1, 12, 9, generator=g) < 0.1 * (1 + seed)).float()
    target[0] = 0  # a patch without lesion
    monai = DiceCELoss(sigmoid=True, batch=False, smooth_nr=1e-5, smooth_dr=1e-5)
    ours = SegmentLoss(dice="sample")(logits, target)
    torch.testing.assert_close(ours, monai(logits, target), rtol=1e-6, atol=1e-6)


def test_per_sample_dice_weighs_a_small_lesion_as_much_as_a_large_one():
    """Hand-made: sample 0 has a 100-pixel lesion predicted exactly, sample 1 a 1-pixel lesion
    missed (p = 0). Over the batch: 1 - 200 / 201; per sample: the mean of 0 and 1."""
    logits = torch.full((2, 1, 20, 20), -1e4)
    target = torch.zeros(2, 1, 20, 20)
    target[0, 0, :10, :10] = 1
    logits[0, 0, :10, :10] = 1e4
    target[1, 0, 5, 5] = 1
    assert soft_dice_loss(logits, target, 0.0).item() == pytest.approx(1 / 201, rel=1e-5)
    assert soft_dice_loss(logits, target, 0.0, per_sample=True).item() == pytest.approx(
        0.5, rel=1e-6
    )


@pytest.mark.parametrize("radius", [1, 2, 3])
@pytest.mark.parametrize("seed", range(3))
def test_edge_target_is_scipys_morphological_gradient(radius, seed):
    """A (2r+1)^2 grey dilation minus erosion; outside the image counts as the nearest pixel
    (SciPy mode='nearest'), i.e. the border is not background."""
    rng = np.random.default_rng(seed)
    masks = ndimage.binary_opening(rng.random((3, 20, 17)) < 0.45, np.ones((1, 2, 2)))
    masks = masks.astype(np.float32)
    ours = edge_target(torch.from_numpy(masks)[:, None], radius)[:, 0].numpy()
    k = 2 * radius + 1
    expected = np.stack(
        [ndimage.morphological_gradient(m, size=(k, k), mode="nearest") for m in masks]
    )
    assert ours.sum() > 0 and np.array_equal(ours, expected)
