"""``strokeseg train``: a run folder with config, split, versions, checkpoints, logs and curves.

The Lightning Trainer does the loop, DDP (torchrun or its own launcher), mixed precision on
GPU, checkpointing and progress bars. A run folder that holds ``last.ckpt`` resumes from it.
"""

from __future__ import annotations

import json
import platform
import shutil
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from strokeseg import __version__
from strokeseg.data.fingerprint import dataset_fingerprint
from strokeseg.data.folds import fold_split, make_folds, save_folds, val_share
from strokeseg.data.io import read_grid
from strokeseg.data.layouts import Dataset, find_dataset
from strokeseg.data.mirror import check_scans
from strokeseg.data.preprocessing import TrainingData
from strokeseg.data.splits import lesion_voxels, load_split, make_split, save_split
from strokeseg.data.template import grid_space
from strokeseg.errors import StrokesegError
from strokeseg.models import create_on_meta, has_output_bias
from strokeseg.models.multitask import MIN_LFFGM_INPUT
from strokeseg.training.config import Config, load_config, save_config
from strokeseg.training.curves import plot_curves
from strokeseg.training.datamodule import SliceDataModule, per_process_batch
from strokeseg.training.module import SegmentationModule
from strokeseg.training.quiet import silence_lightning

RUN_FILES = (
    "config.yaml",
    "split.json",
    "folds.json",
    "versions.json",
    "best.ckpt",
    "last.ckpt",
    "metrics.csv",
    "hparams.yaml",
    "curves.png",
)


def versions() -> dict[str, str]:
    import lightning
    import monai

    return {
        "strokeseg": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "monai": monai.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def selection_metric(config: Config) -> str:
    """The logged validation figure that picks ``best.ckpt`` (``trainer.select_by``)."""
    return "val/dice_subject" if config.trainer.select_by == "subject" else "val/dice"


def check_model(config: Config) -> None:
    """Refuse a model setting that cannot be built or trained, before anything is written."""
    model = config.model
    kwargs = config.model_kwargs()
    try:
        network = create_on_meta(model.name, **kwargs)
    except (TypeError, ValueError) as error:
        raise StrokesegError(f"model {model.name} with kwargs {kwargs}: {error}") from None
    if model.output_prior is not None and not has_output_bias(network):
        raise StrokesegError(f"model.output_prior with {model.name}: its output layer has no bias")
    patch = config.data.patch_size
    if getattr(network, "lffgm", None) is not None and patch and patch < 16 * MIN_LFFGM_INPUT:
        raise StrokesegError(
            f"data.patch_size {patch}: {model.name}'s LFFGM needs inputs of at least "
            f"{16 * MIN_LFFGM_INPUT}x{16 * MIN_LFFGM_INPUT} (its input, the 1/16 deepest map, "
            f"must be {MIN_LFFGM_INPUT}x{MIN_LFFGM_INPUT} or more); use a larger patch or whole "
            "slices"
        )


def refuse_other_run(config: Config, out: Path) -> None:
    """Refuse to mix runs: an existing folder must hold the same config (then it resumes)."""
    saved = out / "config.yaml"
    if saved.exists() and not same_config(saved, config):
        raise StrokesegError(
            f"{out}: holds a run with a different config; use another --out, or --overwrite"
        )


def clear_run_folder(out: Path) -> None:
    """``--overwrite``: the run files and the slice cache of an earlier run go."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "cache", ignore_errors=True)


def same_config(saved: Path, config: Config) -> bool:
    """Whether a saved config.yaml resolves to ``config`` (keys added to strokeseg since it was
    written count with their defaults, so older run folders still resume)."""
    try:
        return load_config(saved).to_dict() == config.to_dict()
    except StrokesegError:
        return False


def subject_split(
    config: Config, dataset: Dataset, saved: Path | None = None
) -> dict[str, list[str]]:
    """The split ``saved`` by the run being resumed (if given and present), else a new seeded
    split by subject."""
    if saved is not None and saved.exists():
        return load_split(saved)
    labelled = [s for s in dataset.subjects if s.masks]  # unlabelled cases cannot train
    ids = [s.id for s in labelled]
    volumes = None
    if config.data.stratify:
        from tqdm import tqdm

        bar = tqdm(labelled, desc="lesion volumes for the split", unit="subject", disable=None)
        volumes = {s.id: lesion_voxels(s.masks) for s in bar}
    return make_split(ids, tuple(config.data.split), config.seed, volumes)


def cross_validation_split(
    config: Config, dataset: Dataset, fold: tuple[int, int], saved: Path | None = None
) -> tuple[dict[str, list[str]], list[list[str]]]:
    """(split, folds) of fold I of K (``fold`` = (K, I)): folds stratified by lesion volume and
    seeded by ``config.seed``, so every run with the same data, K and seed shares them. The
    split ``saved`` by a run being resumed must be the same."""
    labelled = [s for s in dataset.subjects if s.masks]
    volumes = {s.id: lesion_voxels(s.masks) for s in labelled}
    folds = make_folds([s.id for s in labelled], fold[0], config.seed, volumes)
    split = fold_split(folds, fold[1], val_share(config.data.split), config.seed, volumes)
    if saved is not None and saved.exists() and load_split(saved) != split:
        raise StrokesegError(
            f"{saved.parent}: holds a run of another split or fold; use another --out, or "
            "--overwrite"
        )
    return split, folds


def training_data(config: Config, dataset: Dataset, train_ids: list[str]) -> TrainingData:
    """What the checkpoint records of the training subjects ``train_ids``: the preprocessing
    (with their space), the layout and their fingerprint."""
    train_images = [s.image for s in dataset.subjects if s.id in set(train_ids)]
    space = grid_space(read_grid(p) for p in train_images)
    preprocessing = config.preprocessing(dataset.modality, space)
    fingerprint = dataset_fingerprint(train_images, preprocessing)
    return TrainingData(preprocessing, dataset.layout, fingerprint)


def precision(config: Config) -> str:
    if config.trainer.precision:
        return config.trainer.precision
    gpu = torch.cuda.is_available() and config.trainer.accelerator in ("auto", "gpu", "cuda")
    return "16-mixed" if gpu else "32-true"


def set_float32(config: Config) -> None:
    """``32-true`` (the paper configs) is full fp32 on any GPU: cuDNN convolutions stop using
    TF32, which PyTorch allows them by default on Ampere and newer (a 10-bit mantissa; the
    paper's P100 had none), and matrix products keep fp32 ("highest"). Other precisions leave
    PyTorch's settings as they are."""
    if precision(config) == "32-true":
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")


class ValidateLastEpoch(Callback):
    """Validate the last epoch too when ``optim.epochs`` is no multiple of
    ``trainer.check_val_every_n_epoch``, so a shortened run still ends validated, with
    ``best.ckpt`` chosen and ``last.ckpt`` saved. Lightning checks the interval at each epoch,
    so the last epoch runs with an interval of 1 (the checkpoint is then saved at the epoch's
    end, after its validation)."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        every = trainer.check_val_every_n_epoch
        if trainer.current_epoch == trainer.max_epochs - 1 and every and trainer.max_epochs % every:
            trainer.check_val_every_n_epoch = 1


def build_trainer(
    config: Config, out: Path, callbacks: Sequence[Callback], validate: bool = True
) -> L.Trainer:
    """Validation every ``trainer.check_val_every_n_epoch`` epochs and at the last
    (:class:`ValidateLastEpoch`). Without a validation split (the paper's CT protocol)
    ``best.ckpt`` is the last epoch."""
    silence_lightning()
    checkpoint = ModelCheckpoint(
        dirpath=out,
        filename="best",
        monitor=selection_metric(config) if validate else None,
        mode="max",
        save_top_k=1,
        save_last=True,
        enable_version_counter=False,
    )
    t = config.trainer
    return L.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=precision(config),
        max_epochs=config.optim.epochs,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches if validate else 0,
        # without validation, checkpoints are written at each epoch's end only when this is 1
        check_val_every_n_epoch=t.check_val_every_n_epoch if validate else 1,
        num_sanity_val_steps=0,
        logger=CSVLogger(save_dir=out, name="", version=""),
        callbacks=[checkpoint, ValidateLastEpoch(), *callbacks],
        default_root_dir=out,
        log_every_n_steps=1,
    )


def train(
    config: Config,
    data_dir: str | Path,
    out: str | Path,
    *,
    overwrite: bool = False,
    callbacks: Sequence[Callback] = (),
    fold: tuple[int, int] | None = None,
) -> Path:
    """Train ``config`` on the dataset at ``data_dir`` into the run folder ``out``; with
    ``fold`` = (K, I), on fold I of a K-fold cross-validation (:mod:`strokeseg.data.folds`)."""
    out = Path(out)
    check_model(config)
    dataset = find_dataset(data_dir, config.data.layout)
    if config.data.mirror and dataset.modality == "ct":
        raise StrokesegError(
            f"{data_dir}: data.mirror needs scans registered to a symmetric template, and these "
            "are CT scans in scanner space; pass --set data.mirror=false"
        )
    if config.data.mirror:
        check_scans(s.image for s in dataset.subjects)
    if not overwrite:
        refuse_other_run(config, out)
    saved = None if overwrite else out / "split.json"
    folds = None
    if fold is None:
        split = subject_split(config, dataset, saved)
    else:
        split, folds = cross_validation_split(config, dataset, fold, saved)
    if not split["train"]:
        raise StrokesegError(
            f"{data_dir}: {len(dataset.subjects)} subject(s) give an empty training split "
            f"with data.split={config.data.split}"
        )
    trainer = build_trainer(config, out, callbacks, validate=bool(split["val"]))
    per_process_batch(config.optim.batch_size, trainer.world_size)
    # every check above reads only: a refused run writes nothing and an old run is kept
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        clear_run_folder(out)
    L.seed_everything(config.seed, workers=True, verbose=False)
    set_float32(config)
    module = SegmentationModule(config, training_data(config, dataset, split["train"]))
    cache_dir = Path(config.data.cache_dir) if config.data.cache_dir else out / "cache"
    datamodule = SliceDataModule(dataset, split, cache_dir, config)
    if trainer.is_global_zero:
        save_config(config, out / "config.yaml")
        save_split(split, out / "split.json")
        if folds is not None:
            save_folds(folds, config.seed, out / "folds.json")
        (out / "versions.json").write_text(
            json.dumps(versions(), indent=2) + "\n", encoding="utf-8"
        )
    last = out / "last.ckpt"
    trainer.fit(module, datamodule=datamodule, ckpt_path=last if last.exists() else None)
    if trainer.is_global_zero and (out / "metrics.csv").exists():
        plot_curves(out / "metrics.csv", out / "curves.png")
    return out
