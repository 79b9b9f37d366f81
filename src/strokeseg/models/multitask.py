"""The paper's method: multi-task UNet++ with a lesion-edge auxiliary task.

Liu et al., "Multi-task learning improves the brain stroke lesion segmentation"
(see ``docs/method.md``). Names follow the paper so the code can be read beside it:

- ``f_whole``: the segmentation network's last decoder map (UNet++ X(0,4)); the mask head
  (1x1 conv, sigmoid in the loss) reads it.
- ``lffgm``: the low-frequency feature generation module (Sec. 2.2) on the deepest map
  X(4,0); its output, resized to ``f_whole``'s size, is ``f_low``.
- Eq. 1: ``f_edge = f_whole - f_low``; the edge head (1x1 conv) reads it.
- Eq. 2-4: ``SegmentLoss`` = alpha * soft Dice loss + beta * binary cross-entropy.
- Eq. 5: ``loss_lap`` = mean |Lap(p) - Lap(y)| with a fixed 3x3 Laplacian kernel.
- Eq. 6: ``MultiTaskLoss`` = gamma * Loss_mask + lambda * Loss_edge + delta * Loss_lap.

A control that is not the paper's, for telling extra boundary supervision apart from the edge
branch: ``BoundaryWeightedLoss``, Eq. 2 whose cross-entropy up-weights the pixels of the edge
task's target band, on the mask head alone (``loss.boundary_weight``).

The edge branch exists only while training: in eval mode ``forward`` returns the mask
logits of the backbone alone, and :meth:`MultiTaskNet.inference_network` hands back the
backbone, whose state dict is exactly that of the single-task UNet++.

Two training aids wrap the paper's loss from outside, neither in the paper: deep supervision
(:class:`DeepSupervision`, the UNet++ paper's, averages Loss_mask over the backbone's extra
heads) and a warm-up of delta (``MultiTaskLoss``'s ``delta_weight``, passed in per step).
Eq. 5 is on or off by the config (``loss.laplacian``, see :func:`laplacian_default`), not by
the network: the LFFGM network of Table 2's last two rows is the same.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from strokeseg.models.blocks import ConvBNReLU
from strokeseg.models.keras_layers import he_normal_
from strokeseg.models.registry import register_model
from strokeseg.models.unetpp import UNetPlusPlus

PROPOSED = "unetpp_mtl"
"""Table 2's last row, the proposed method: the only row whose loss adds Eq. 5 by default."""
LAPLACIAN_KERNEL = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))
# Smallest deepest map (X(4,0), 1/16 of the input) a training setting may give the LFFGM: it
# pools twice, so 8x8 leaves a 2x2 low-frequency map, while 4x4 (64x64 patches) leaves 1x1,
# with no spatial content to tell low from high frequencies. Training refuses smaller patches
# (training/run.py); the module itself runs from 4x4 up (tiny test volumes).
MIN_LFFGM_INPUT = 8


class LFFGM(nn.Module):
    """Low-frequency feature generation module (Sec. 2.2, Fig. 1).

    A small U shape on the deepest feature map: two [2x2 max-pool, 3x3 conv, BN, ReLU]
    steps down, two [x2 bilinear upsample, 3x3 conv, BN, ReLU] steps up (each upsample to
    the exact size of the matching map, so odd sizes work), a skip concatenation with the
    module input, and a 1x1 conv to ``out_channels`` (the channels of F_whole).
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 32):
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.down1 = ConvBNReLU(in_channels, hidden, bias=False)
        self.down2 = ConvBNReLU(hidden, hidden, bias=False)
        self.up1 = ConvBNReLU(hidden, hidden, bias=False)
        self.up2 = ConvBNReLU(hidden, hidden, bias=False)
        self.fuse = nn.Conv2d(in_channels + hidden, out_channels, 1)

    def forward(self, deepest: torch.Tensor) -> torch.Tensor:
        if min(deepest.shape[-2:]) < 4:
            raise ValueError(
                f"LFFGM pools twice: the deepest map must be at least 4x4 (an input of at least "
                f"64x64), got {tuple(deepest.shape[-2:])}"
            )
        d1 = self.down1(self.pool(deepest))
        d2 = self.down2(self.pool(d1))
        u1 = self.up1(upsample_to(d2, d1))
        u2 = self.up2(upsample_to(u1, deepest))
        return self.fuse(torch.cat([u2, deepest], dim=1))


def upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of ``x`` to the spatial size of ``like``."""
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class MultiTaskNet(nn.Module):
    """A segmentation backbone with an edge head used only in training.

    ``aux="lffgm"``: Eq. 1, ``f_edge = f_whole - f_low``. ``aux="edge"``: the edge head reads
    ``f_whole`` directly (Table 2, "simple edge segmentation head").

    Backbone contract: ``features(x)`` returns a dict with ``f_whole`` (its last feature map,
    ``f_whole_channels`` channels) and ``deepest`` (its deepest map, ``deepest_channels``
    channels, at least 4x4), ``head`` maps ``f_whole`` to mask logits, and ``forward(x)`` in
    eval mode is ``head(features(x)["f_whole"])``. Any other entry of ``features`` is a
    training output of the backbone's own (UNet++'s deep supervision, ``deep``), passed on.
    """

    def __init__(self, backbone: nn.Module, aux: str = "lffgm"):
        super().__init__()
        if aux not in ("edge", "lffgm"):
            raise ValueError(f"aux must be 'edge' or 'lffgm', got {aux!r}")
        self.backbone = backbone
        c = backbone.f_whole_channels
        self.lffgm = LFFGM(backbone.deepest_channels, c, hidden=c) if aux == "lffgm" else None
        self.edge_head = nn.Conv2d(c, 1, 1)
        he_normal_(self.edge_head)
        if self.lffgm is not None:
            he_normal_(self.lffgm)

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        if not self.training:
            return self.backbone(x)
        features = dict(self.backbone.features(x))
        f_whole, deepest = features.pop("f_whole"), features.pop("deepest")
        f_edge = f_whole
        if self.lffgm is not None:
            f_low = upsample_to(self.lffgm(deepest), f_whole)
            f_edge = f_whole - f_low  # Eq. 1
        return {"mask": self.backbone.head(f_whole), "edge": self.edge_head(f_edge), **features}

    def inference_network(self) -> nn.Module:
        return self.backbone


def edge_target(mask: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """Lesion-edge ground truth: pixels whose (2r+1)^2 neighbourhood holds lesion and background.

    For ``radius=1`` this is a two-pixel band across the boundary (one pixel each side).
    Pixels outside the image do not count as background.
    """
    k = 2 * radius + 1
    dilated = F.max_pool2d(mask, k, stride=1, padding=radius)
    eroded = -F.max_pool2d(-mask, k, stride=1, padding=radius)
    return dilated - eroded


def soft_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5, per_sample: bool = False
) -> torch.Tensor:
    """Eq. 4: 1 - (2 sum(p y) + s) / (sum(p) + sum(y) + s), p = sigmoid, summed over the whole
    batch; ``per_sample``: summed over each sample's pixels, then the samples' losses averaged
    (each sample weighs alike, whatever its lesion's size; nnU-Net's default in 3D)."""
    p = torch.sigmoid(logits)
    dims = tuple(range(1, p.dim())) if per_sample else tuple(range(p.dim()))
    intersection = (p * target).sum(dims)
    dice = (2 * intersection + smooth) / (p.sum(dims) + target.sum(dims) + smooth)
    return (1 - dice).mean()


class SegmentLoss(nn.Module):
    """Eq. 2: alpha * DiceLoss + beta * CE (binary cross-entropy on logits, mean over pixels)."""

    def __init__(
        self, alpha: float = 1.0, beta: float = 1.0, smooth: float = 1e-5, dice: str = "batch"
    ):
        super().__init__()
        if dice not in ("batch", "sample"):
            raise ValueError(f"dice must be 'batch' or 'sample', got {dice!r}")
        self.alpha, self.beta, self.smooth = alpha, beta, smooth
        self.per_sample = dice == "sample"

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        dice = soft_dice_loss(logits, target, self.smooth, self.per_sample)
        return self.alpha * dice + self.beta * self.cross_entropy(logits, target)

    def cross_entropy(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, target)


class BoundaryWeightedLoss(SegmentLoss):
    """A control, not in the paper: Eq. 2 whose cross-entropy weighs each pixel of the lesion
    edge band (:func:`edge_target`, the edge task's target) ``1 + boundary_weight`` and every
    other pixel 1, averaged over all pixels (the weights are not renormalised). The boundary
    gets extra supervision through the mask head, with no second head."""

    def __init__(self, boundary_weight: float, edge_radius: int = 1, **segment):
        super().__init__(**segment)
        self.boundary_weight, self.edge_radius = boundary_weight, edge_radius

    def cross_entropy(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weight = 1 + self.boundary_weight * edge_target(target, self.edge_radius)
        return F.binary_cross_entropy_with_logits(logits, target, weight=weight)


class LaplacianLoss(nn.Module):
    """Eq. 5: mean over pixels of |Lap(p) - Lap(y)|, p = sigmoid(logits), fixed 3x3 kernel."""

    def __init__(self):
        super().__init__()
        kernel = torch.tensor(LAPLACIAN_KERNEL).view(1, 1, 3, 3)
        self.register_buffer("kernel", kernel, persistent=False)

    def laplacian(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel.to(x.dtype), padding=1)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        diff = self.laplacian(torch.sigmoid(logits)) - self.laplacian(target)
        return diff.abs().mean()


class DeepSupervision(nn.Module):
    """Deep supervision (Zhou et al. 2018, not in this paper): ``loss`` averaged over the mask
    head and the backbone's extra heads, ``[mask, *deep]``; the mask head's alone without."""

    def __init__(self, loss: nn.Module):
        super().__init__()
        self.loss = loss

    def forward(self, heads: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        main, *deep = heads
        return (self.loss(main, target) + sum(self.loss(h, target) for h in deep)) / len(heads)


class MultiTaskLoss(nn.Module):
    """Eq. 6: gamma * Loss_mask + lambda * Loss_edge + delta * Loss_lap.

    ``outputs`` is the model's training output: mask logits, or ``{"mask", "edge"}`` (and
    ``"deep"``, deep-supervision logits that :class:`DeepSupervision` averages into
    Loss_mask). Loss_edge is used when the model predicts an edge, Loss_lap (Eq. 5, on the
    mask) when ``laplacian`` is set; ``delta_weight`` scales delta (a warm-up, not in the
    paper; 1 is Eq. 6). ``boundary_weight`` > 0 makes Loss_mask the
    :class:`BoundaryWeightedLoss` control (the edge term keeps Eq. 2). Returns the total and
    each term (detached) for logging.
    """

    def __init__(
        self,
        gamma: float = 1.0,
        lam: float = 1.0,
        delta: float = 10.0,
        alpha: float = 1.0,
        beta: float = 1.0,
        smooth: float = 1e-5,
        edge_radius: int = 1,
        laplacian: bool = True,
        dice: str = "batch",
        boundary_weight: float = 0.0,
    ):
        super().__init__()
        self.gamma, self.lam, self.delta = gamma, lam, delta
        self.edge_radius = edge_radius
        self.segment = SegmentLoss(alpha, beta, smooth, dice)  # Eq. 2-4
        segment_mask = self.segment
        if boundary_weight > 0:  # the boundary-weighted BCE control, not the paper's
            segment = dict(alpha=alpha, beta=beta, smooth=smooth, dice=dice)
            segment_mask = BoundaryWeightedLoss(boundary_weight, edge_radius, **segment)
        self.loss_mask = DeepSupervision(segment_mask)
        self.loss_lap = LaplacianLoss() if laplacian else None  # Eq. 5

    def forward(
        self,
        outputs: torch.Tensor | dict[str, torch.Tensor],
        mask: torch.Tensor,
        delta_weight: float = 1.0,
    ) -> dict[str, torch.Tensor]:
        if isinstance(outputs, torch.Tensor):
            outputs = {"mask": outputs}
        heads = [outputs["mask"], *outputs.get("deep", ())]
        terms = {"loss_mask": self.loss_mask(heads, mask)}  # Eq. 2 on the mask
        if "edge" in outputs:  # Eq. 2 on the edge
            terms["loss_edge"] = self.segment(outputs["edge"], edge_target(mask, self.edge_radius))
        if self.loss_lap is not None:  # Eq. 5
            terms["loss_lap"] = self.loss_lap(outputs["mask"], mask)
        weights = {"loss_mask": self.gamma, "loss_edge": self.lam, "loss_lap": self.delta}
        weights["loss_lap"] *= delta_weight
        total = sum(weights[name] * term for name, term in terms.items())  # Eq. 6
        return {"loss": total, **{k: v.detach() for k, v in terms.items()}}


def laplacian_default(model_name: str) -> bool:
    """Whether a model's Table 2 row trains with Eq. 5 when ``loss.laplacian`` is not set: the
    proposed method (``unetpp_mtl``) only."""
    return model_name == PROPOSED


def build_loss(model_name: str, laplacian: bool | None = None, **weights) -> MultiTaskLoss:
    """The training loss of a model and a config's ``loss`` settings (``delta_warmup`` is the
    training module's). Eq. 5 is on when ``laplacian`` is true, off when false; ``None``
    follows the row (:func:`laplacian_default`). The edge term follows the model's output."""
    if laplacian is None:
        laplacian = laplacian_default(model_name)
    return MultiTaskLoss(laplacian=laplacian, **weights)


@register_model("unetpp_edge")
def unetpp_edge(**kwargs) -> MultiTaskNet:
    """Table 2, row 2: UNet++ + an edge head directly on F_whole (no LFFGM, no Eq. 5)."""
    return MultiTaskNet(UNetPlusPlus(**kwargs), aux="edge")


@register_model("unetpp_lffgm")
def unetpp_lffgm(**kwargs) -> MultiTaskNet:
    """Table 2, row 3: UNet++ + LFFGM edge branch (Eq. 1); its loss has no Eq. 5 by default."""
    return MultiTaskNet(UNetPlusPlus(**kwargs), aux="lffgm")


@register_model(PROPOSED)
def unetpp_mtl(**kwargs) -> MultiTaskNet:
    """Table 2, row 4 (the proposed method): the LFFGM edge branch, trained with Eq. 5."""
    return MultiTaskNet(UNetPlusPlus(**kwargs), aux="lffgm")
