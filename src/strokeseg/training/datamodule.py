"""Slices for Lightning: the cache is built once per node (``prepare_data``), then memory-mapped."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from strokeseg.data.cache import SliceCache, SliceDataset
from strokeseg.data.layouts import Dataset
from strokeseg.training.config import Config


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
        batch = self.config.optim.batch_size
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
            batch_size=self.config.optim.batch_size,
            num_workers=self.config.data.num_workers,
        )
