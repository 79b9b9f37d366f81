"""The LightningModule: one registered model, the loss it asks for, validation Dice.

Validation runs on the validation subjects' slices (every one, or every k-th with
``data.val_slice_stride``), masks thresholded at p = 0.5, sums reduced across DDP ranks. Two
figures are logged: ``val/dice_subject``, the mean over subjects of each subject's Dice on its
slices (its 3D Dice when every slice is used: the headline metric), and ``val/dice``, pooled
over all slices (sum of overlaps over sum of sizes). ``best.ckpt`` follows the one chosen by
``trainer.select_by``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import lightning as L
import torch

from strokeseg import __version__
from strokeseg.data.preprocessing import TrainingData
from strokeseg.evaluation.metrics import dice_from_counts
from strokeseg.models import create_model, init_output_prior
from strokeseg.models.multitask import build_loss
from strokeseg.models.weights import load_weights
from strokeseg.training.config import Config


class SegmentationModule(L.LightningModule):
    """Trains the model ``config`` describes; ``data``: what the checkpoint records of the
    training data (:class:`strokeseg.data.preprocessing.TrainingData`, without its slice grid,
    which the training batches give)."""

    def __init__(self, config: Config, data: TrainingData | None = None):
        super().__init__()
        self.config, self.data = config, data
        self.save_hyperparameters(  # plain data: checkpoints load with weights_only=True
            {"config": config.to_dict(), "data": data.to_dict() if data else None}
        )
        self.model = create_model(config.model.name, **config.model_kwargs())
        if config.model.output_prior is not None:
            init_output_prior(self.model, config.model.output_prior)
        if config.model.weights:
            load_weights(self.model, config.model.weights)
        self.model = self.model.to(memory_format=torch.channels_last)  # ~10 % faster steps on CPU
        loss = vars(config.loss).copy()
        self.delta_warmup = float(loss.pop("delta_warmup", 0.0))
        self.criterion = build_loss(config.model.name, **loss)
        self._val_sums = torch.zeros(1, 3)

    def forward(self, x: torch.Tensor):
        return self.model(x)

    def on_after_batch_transfer(self, batch: dict[str, torch.Tensor], dataloader_idx: int) -> dict:
        batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
        return batch

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self._slice_grid = list(batch["image"].shape[-2:])  # inference runs on it (grid.py)
        outputs = self.model(batch["image"])
        losses = self.criterion(outputs, batch["mask"], delta_weight=self.warmup_scale())
        size = batch["image"].shape[0]
        self.log("train/loss", losses["loss"], prog_bar=True, batch_size=size, sync_dist=True)
        for name, value in losses.items():
            if name != "loss":
                self.log(f"train/{name}", value, batch_size=size, sync_dist=True)
        return losses["loss"]

    def warmup_scale(self) -> float:
        """delta's share at this step: 0 at the first, rising linearly to 1 after
        ``delta_warmup`` of the run's optimiser steps (without a Laplacian term the mask loss
        leaves its all-background start sooner: docs/training.md); 1 without a warm-up."""
        if self.delta_warmup == 0:
            return 1.0
        steps = self.delta_warmup * max(1, int(self.trainer.estimated_stepping_batches))
        return min(1.0, self.global_step / steps)

    def on_validation_epoch_start(self) -> None:
        subjects = len(self.trainer.datamodule.cache.subject_ids)
        # per cache subject: overlap, predicted, truth, slices seen
        self._val_sums = torch.zeros(subjects, 4, device=self.device, dtype=torch.float64)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self.model(batch["image"])
        pred, mask = logits > 0, batch["mask"] > 0.5
        per_slice = torch.stack(
            [(pred & mask).sum((1, 2, 3)), pred.sum((1, 2, 3)), mask.sum((1, 2, 3))], dim=1
        ).to(self._val_sums)
        ones = torch.ones(len(per_slice), 1, dtype=per_slice.dtype, device=per_slice.device)
        self._val_sums.index_add_(
            0, batch["subject"].to(self.device), torch.cat([per_slice, ones], 1)
        )
        loss = self.criterion.segment(logits, batch["mask"])
        self.log("val/loss_mask", loss, batch_size=batch["image"].shape[0], sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        sums = self.trainer.strategy.reduce(self._val_sums, reduce_op="sum")
        overlap, predicted, truth = sums[:, :3].sum(0).tolist()
        self.log("val/dice", dice_from_counts(overlap, predicted + truth), prog_bar=True)
        seen = sums[sums[:, 3] > 0].cpu().numpy()
        per_subject = torch.from_numpy(dice_from_counts(seen[:, 0], seen[:, 1] + seen[:, 2]))
        self.log("val/dice_subject", float(per_subject.mean()) if len(seen) else 0.0, prog_bar=True)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Conv kernels get the Keras-style L2 penalty (``l2 * sum(w^2)`` in the loss, i.e. a
        gradient of ``2 * l2 * w``: Adam's coupled weight decay of ``2 * l2``), as the
        official UNet++ code puts ``kernel_regularizer=l2(1e-4)`` on its Conv2D layers."""
        l2 = self.config.optim.l2
        kernels = [m.weight for m in self.model.modules() if isinstance(m, torch.nn.Conv2d)]
        ids = {id(p) for p in kernels}
        rest = [p for p in self.model.parameters() if id(p) not in ids]
        decay = self.config.optim.weight_decay
        return [
            {"params": kernels, "weight_decay": decay + 2 * l2},
            {"params": rest, "weight_decay": decay},
        ]

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.parameter_groups(), lr=self.config.optim.lr)
        if self.config.optim.schedule == "constant":
            return optimizer
        # cosine: lr decays from its value to 0 over every optimiser step of the run
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": cosine, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Make the checkpoint self-describing for inference without this module."""
        grid = getattr(self, "_slice_grid", None)
        data = replace(self.data, slice_grid=tuple(grid) if grid else None) if self.data else None
        checkpoint["strokeseg"] = {
            "version": __version__,
            "model_name": self.config.model.name,
            "model_kwargs": self.config.model_kwargs(),
            "data": data.to_dict() if data else {},
            "config": self.config.to_dict(),
        }
