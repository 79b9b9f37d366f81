"""``strokeseg train``: a run folder, and the post-processing decided when training ends.

The post-processing is not in the paper (``docs/training.md``): the run's ``best.ckpt``
segments each validation subject once; the probability threshold and the minimum lesion volume
(26-connected components, mm3) best by ``config.postprocess``'s objective (mean per-subject
Dice, or its mean with lesion-wise F1) over its grid are stored in the checkpoint's
description, where ``predict`` and ``evaluate`` find them, with the median volume of the false
lesions (touching no true lesion) the rule left in a validation subject (the quality checks
doubt a finding no larger than that). :class:`FitPostprocess` does it as a Lightning callback,
on global rank zero once ``fit()`` has written the checkpoints.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from strokeseg.data.io import write_atomic
from strokeseg.data.layouts import find_dataset, load_subject
from strokeseg.data.splits import load_split
from strokeseg.inference.checkpoint import read_checkpoint
from strokeseg.inference.engine import Predictor
from strokeseg.inference.ensemble import load_predictor
from strokeseg.inference.options import InferenceOptions
from strokeseg.inference.postprocess import choose, false_lesion_ml
from strokeseg.training import run as training_run
from strokeseg.training.config import Config


def subject_cases(predictor: Predictor, dataset, ids) -> list:
    """(probability, reference mask, voxel mm3) of each subject ``ids`` of ``dataset``, the
    cases :func:`strokeseg.inference.postprocess.choose` fits a rule on."""
    by_id = {s.id: s for s in dataset.subjects}
    cases = []
    for sid in ids:
        image, gt = load_subject(by_id[sid])
        cases.append((predictor.probabilities(predictor.prepare(image)), gt, image.voxel_mm3))
    return cases


def fit_postprocess(config: Config, data_dir: str | Path, run: str | Path) -> dict | None:
    """Choose and store the post-processing of ``run/best.ckpt``; None when there is nothing to
    fit on (no validation subjects, or ``postprocess.fit`` off)."""
    run = Path(run)
    val = load_split(run / "split.json")["val"]
    if not config.postprocess.fit or not val:
        return None
    from tqdm import tqdm

    checkpoint = run / "best.ckpt"
    options = InferenceOptions(postprocess=False, device="auto")
    predictor, _ = load_predictor([checkpoint], options)
    dataset = find_dataset(data_dir, config.data.layout)
    ids = tqdm(val, desc="post-processing (validation)", unit="subject", disable=None)
    cases = subject_cases(predictor, dataset, ids)
    settings = config.postprocess
    rule, chosen, raw = choose(
        cases, settings.thresholds, settings.min_lesion_mm3, settings.objective
    )
    record = {
        **rule.to_dict(),
        "objective": settings.objective,
        "val_dice": chosen["dice"],
        "val_dice_raw": raw["dice"],
        "val_f1": chosen["f1"],
        "val_f1_raw": raw["f1"],
        "val_subjects": len(val),
        "val_false_lesion_ml_median": float(
            np.median([false_lesion_ml(p, g, mm3, rule) for p, g, mm3 in cases])
        ),
    }
    state = read_checkpoint(checkpoint)
    state["strokeseg"]["postprocess"] = record
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(checkpoint, buffer.getvalue(), overwrite=True)
    return record


class FitPostprocess(Callback):
    """:func:`fit_postprocess` once ``fit()`` ends, on global rank zero only (the one process
    that edits files); keeps the stored record and how long the fit took."""

    def __init__(self, config: Config, data_dir: str | Path, run: str | Path) -> None:
        self.config, self.data_dir, self.run = config, data_dir, Path(run)
        self.record: dict | None = None
        self.seconds = 0.0

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            start = time.perf_counter()
            self.record = fit_postprocess(self.config, self.data_dir, self.run)
            self.seconds = time.perf_counter() - start


@dataclass
class Trained:
    run: Path
    postprocess: dict | None  # the fitted rule's record (None: nothing fitted, or rank > 0)
    postprocess_seconds: float


def train(
    config: Config,
    data_dir: str | Path,
    out: str | Path,
    *,
    overwrite: bool = False,
    fold: tuple[int, int] | None = None,
) -> Trained:
    """Train ``config`` into the run folder ``out`` (:func:`strokeseg.training.run.train`) and
    fit its post-processing on the validation subjects."""
    fit = FitPostprocess(config, data_dir, out)
    run = training_run.train(config, data_dir, out, overwrite=overwrite, callbacks=[fit], fold=fold)
    return Trained(run, fit.record, fit.seconds)
