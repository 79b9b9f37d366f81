"""The LightningModule: one registered model, the loss it asks for, validation Dice.

Validation Dice is pooled over the validation slices (every one, or every k-th with
``data.val_slice_stride``; sum of overlaps over sum of sizes,
masks thresholded at p = 0.5) and reduced across DDP ranks; ``best.ckpt`` follows it.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from strokeseg import __version__
from strokeseg.inference.checkpoint import load_weights
from strokeseg.models import create_model, init_output_prior
from strokeseg.models.multitask import build_loss


class SegmentationModule(L.LightningModule):
    def __init__(
        self,
        model_name: str,
        model_kwargs: dict[str, Any],
        loss: dict[str, Any],
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        schedule: str = "constant",
        data: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        weights: str | None = None,
        output_prior: float | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model = create_model(model_name, **model_kwargs)
        if output_prior is not None:
            init_output_prior(self.model, output_prior)
        if weights:
            load_weights(self.model, weights)
        self.model = self.model.to(memory_format=torch.channels_last)  # ~10 % faster steps on CPU
        self.criterion = build_loss(self.model, **loss)
        self._val_sums = torch.zeros(3)

    def forward(self, x: torch.Tensor):
        return self.model(x)

    def on_after_batch_transfer(self, batch: dict[str, torch.Tensor], dataloader_idx: int) -> dict:
        batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
        return batch

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self._slice_grid = list(batch["image"].shape[-2:])  # inference runs on it (grid.py)
        losses = self.criterion(self.model(batch["image"]), batch["mask"])
        size = batch["image"].shape[0]
        self.log("train/loss", losses["loss"], prog_bar=True, batch_size=size, sync_dist=True)
        for name, value in losses.items():
            if name != "loss":
                self.log(f"train/{name}", value, batch_size=size, sync_dist=True)
        return losses["loss"]

    def on_validation_epoch_start(self) -> None:
        self._val_sums = torch.zeros(3, device=self.device, dtype=torch.float64)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self.model(batch["image"])
        pred, mask = logits > 0, batch["mask"] > 0.5
        self._val_sums += torch.stack([(pred & mask).sum(), pred.sum(), mask.sum()]).to(
            self._val_sums
        )
        loss = self.criterion.segment(logits, batch["mask"])
        self.log("val/loss_mask", loss, batch_size=batch["image"].shape[0], sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        sums = self.trainer.strategy.reduce(self._val_sums, reduce_op="sum")
        overlap, predicted, truth = sums.tolist()
        dice = 1.0 if predicted + truth == 0 else 2 * overlap / (predicted + truth)
        self.log("val/dice", dice, prog_bar=True)

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(
            self.model.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        if self.hparams.schedule == "constant":
            return optimizer
        # cosine: lr decays from its value to 0 over every optimiser step of the run
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": cosine, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Make the checkpoint self-describing for inference without this module."""
        checkpoint["strokeseg"] = {
            "version": __version__,
            "model_name": self.hparams.model_name,
            "model_kwargs": dict(self.hparams.model_kwargs),
            "data": {**(self.hparams.data or {}), "slice_grid": getattr(self, "_slice_grid", None)},
            "config": self.hparams.config,
        }
