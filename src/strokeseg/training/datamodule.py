"""Slices for Lightning: the cache is built once per node (``prepare_data``), then memory-mapped.

``optim.batch_size`` is the global batch (the paper's 8 is one optimiser step's samples): under
DDP each of the N processes loads batch_size / N of them.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from strokeseg.data.cache import SliceCache, SliceDataset
from strokeseg.data.layouts import Dataset
from strokeseg.errors import StrokesegError
from strokeseg.training.config import Config


def per_process_batch(batch_size: int, world_size: int) -> int:
    """Each DDP process's share of the global batch ``optim.batch_size``; refused unless it
    divides evenly (an uneven share would change the global batch)."""
    if batch_size % world_size:
        raise StrokesegError(
            f"optim.batch_size {batch_size} is the global batch: it does not divide among "
            f"{world_size} processes (devices x nodes); use a multiple of {world_size}"
        )
    return batch_size // world_size


class SliceDataModule(L.LightningDataModule):
    def __init__(
        self, dataset: Dataset, split: dict[str, list[str]], cache_dir: Path, config: Config
    ):
        super().__init__()
        self.dataset, self.split, self.cache_dir, self.config = dataset, split, cache_dir, config
        self.cache: SliceCache | None = None

    def _build_cache(self) -> SliceCache:
        ids = self.split["train"] + self.split["val"]
        preprocessing = self.config.preprocessing(self.dataset.modality)
        return SliceCache.build(self.dataset, ids, self.cache_dir, preprocessing)

    def prepare_data(self) -> None:
        self._build_cache()

    def setup(self, stage: str) -> None:
        self.cache = self._build_cache()  # re-uses what prepare_data wrote

    @property
    def process_batch(self) -> int:
        """This process's share of the global batch (all of it outside a Trainer)."""
        world = self.trainer.world_size if self.trainer is not None else 1
        return per_process_batch(self.config.optim.batch_size, world)

    def train_dataloader(self) -> DataLoader:
        data = self.config.data
        dataset = SliceDataset(
            self.cache,
            self.split["train"],
            augment=data.augment,
            lesion_fraction=data.lesion_fraction,
            lesion_balance=data.lesion_balance,
            patch_size=data.patch_size,
            patch_positive=data.patch_positive,
            context_slices=data.context_slices,
        )
        batch = self.process_batch
        sampler = dataset.sampler()
        return DataLoader(
            dataset,
            batch_size=batch,
            sampler=sampler,
            shuffle=sampler is None,
            drop_last=len(dataset) > batch,  # BatchNorm needs more than one sample
            num_workers=data.num_workers,
            persistent_workers=data.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        if not self.split["val"]:
            return []
        dataset = SliceDataset(
            self.cache,
            self.split["val"],
            slice_stride=self.config.data.val_slice_stride,
            context_slices=self.config.data.context_slices,
        )
        return DataLoader(
            dataset,
            batch_size=self.process_batch,
            num_workers=self.config.data.num_workers,
        )
