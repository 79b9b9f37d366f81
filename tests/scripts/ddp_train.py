"""Run by tests/test_ddp.py under torchrun: train the tiny config with DDP on CPU (gloo) and
save each rank's final weights, so the test can check that the ranks agree."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

from strokeseg.training.config import load_config
from strokeseg.training.run import train


class SaveRankWeights(Callback):
    def __init__(self, out: Path):
        self.out = out

    def on_train_end(self, trainer, pl_module) -> None:
        state = {k: v.detach().cpu() for k, v in pl_module.model.state_dict().items()}
        info = {
            "world_size": trainer.world_size,
            "batches": trainer.num_training_batches,
            "batch_size": trainer.train_dataloader.batch_size,
        }
        torch.save({"state": state, **info}, self.out / f"rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    overrides = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp"]
    config = load_config("tiny", overrides)
    out.mkdir(parents=True, exist_ok=True)
    train(config, data, out / "run", callbacks=[SaveRankWeights(out)])
