"""``strokeseg benchmark table``: reproduce a table of the paper, one row per shipped config.

Every row of Table 1 (CT baselines), Table 2 (ablation) or Table 3 (ATLAS baselines) is trained
with each seed, evaluated on the test split, and timed at inference in the same run; the result
is a markdown table (mean +- std over seeds of the per-subject means of Dice, IoU, lesion-wise
F1, volume difference and HD95), the paired per-subject differences of every row against the
reference row (UNet++ where the table has it: mean, 95 % bootstrap interval, Wilcoxon p, also
by lesion-size stratum), a forest plot of them, and the raw per-run JSON. ``paper`` is the
paper's recipe (a GPU job); ``cpu`` is a reduced setting that fits a 2-core machine: the demo's
setting (``configs/demo.yaml``).

With ``folds=K`` the test split becomes K-fold cross-validation (:mod:`strokeseg.data.folds`):
the folds are made once per seed (``OUT/folds_seed{S}.json``) and shared by every row, each
(row, seed, fold) is one run in ``OUT/<row>/seed{S}/fold{I}/``, and every subject is tested
once per seed. A call may run one fold (``fold``) or some rows (``rows``) alone, as separate
cluster jobs; a later call without ``fold`` re-uses every finished run and writes the table.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import statistics
import time
from pathlib import Path

import torch

from strokeseg.data.folds import check_fold, make_folds, save_folds
from strokeseg.data.io import write_atomic
from strokeseg.data.layouts import find_dataset
from strokeseg.data.slices import target_size
from strokeseg.data.splits import lesion_voxels
from strokeseg.errors import StrokesegError
from strokeseg.evaluation.design import DesignComparison
from strokeseg.evaluation.figures import save_figure
from strokeseg.evaluation.leaderboards import PRESETS, MetricPreset, metric_preset
from strokeseg.inference.checkpoint import input_channels, load_network
from strokeseg.inference.options import InferenceOptions
from strokeseg.jobs.benchmark_rows import (
    check_profile,
    profile_overrides,
    row_configs,
)
from strokeseg.jobs.evaluate import evaluate_checkpoint
from strokeseg.jobs.train import train
from strokeseg.reports.tables import (
    COLUMNS,
    SUBJECT_KEYS,
    forest_figure,
    markdown,
    merge_folds,
    paired_markdown,
    paired_statistics,
)
from strokeseg.training.config import Config, load_config
from strokeseg.training.run import same_config


def inference_ms_per_slice(
    network: torch.nn.Module, size: tuple[int, int], channels: int = 1, repeats: int = 5
) -> float:
    """Median latency of the deployed network on one slice of the dataset's size (with
    ``channels`` input channels: 2k+1 for 2.5D context k)."""
    x = torch.randn(1, channels, *size)
    times = []
    with torch.inference_mode():
        network(x)
        for _ in range(repeats):
            start = time.perf_counter()
            network(x)
            times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def slice_size(data: Path) -> tuple[int, int]:
    """The in-plane training size of the dataset's first subject."""
    import nibabel as nib

    from strokeseg.data.io import load_volume

    subject = find_dataset(data).subjects[0]
    if subject.image.is_dir():
        shape = load_volume(subject.image).data.shape
    else:
        shape = nib.as_closest_canonical(nib.load(subject.image)).shape
    return target_size(shape[1]), target_size(shape[0])


SUMMARY_KEYS = (
    "n_subjects",
    *(k for _, k in COLUMNS),
    "dice_std",
    "iou_std",
    "iou_pooled",
    "hd95_mm_n",
)


def read_subjects(per_subject_csv: Path) -> dict[str, dict[str, float]]:
    """The per-subject values kept in a result record, from an evaluation's per_subject.csv."""
    with per_subject_csv.open(encoding="utf-8", newline="") as f:
        return {
            row["subject"]: {k: float(row[k]) for k in SUBJECT_KEYS} for row in csv.DictReader(f)
        }


def evaluation_record(
    checkpoint: Path, data: Path, folder: Path, preset: MetricPreset, config: Config
) -> dict:
    """Evaluate a checkpoint on its test split into ``folder/evaluation`` as ``preset``
    scores: summary means and the per-subject values (post-processed and raw)."""
    device = "cpu" if config.trainer.accelerator == "cpu" else "auto"  # where it trained
    summary = evaluate_checkpoint(
        checkpoint,
        data,
        folder / "evaluation",
        connectivity=preset.connectivity,
        metrics=preset.name,
        overwrite=True,
        options=InferenceOptions(device=device),
    )
    return {
        "connectivity": preset.connectivity,
        "metrics": preset.name,
        **{k: summary[k] for k in SUMMARY_KEYS},
        "subjects": read_subjects(folder / "evaluation" / "per_subject.csv"),
        "subjects_raw": read_subjects(folder / "evaluation" / "per_subject_raw.csv"),
    }


def run_row(
    model: str,
    config_file: Path,
    seed: int,
    data: Path,
    folder: Path,
    overrides: list[str],
    size,
    *,
    fold: tuple[int, int] | None = None,
    preset: MetricPreset = PRESETS["strokeseg"],
) -> dict:
    """Train, evaluate and time one (row, seed[, fold]); the record is saved as ``result.json``."""
    start = time.perf_counter()
    config = load_config(config_file, [*overrides, f"seed={seed}"])
    checkpoint = train(config, data, folder / "run", fold=fold).run / "best.ckpt"
    network, meta = load_network(checkpoint)
    record = {
        "model": model,
        "seed": seed,
        **({"folds": fold[0], "fold": fold[1]} if fold else {}),
        "params": sum(p.numel() for p in network.parameters()),
        "inference_ms": inference_ms_per_slice(network, size, input_channels(meta)),
        **evaluation_record(checkpoint, data, folder, preset, config),
        "wall_seconds": time.perf_counter() - start,
    }
    write_record(record, folder / "result.json")
    if config.data.cache_dir is None:  # the run's own slice cache (about 1 GB per ATLAS run)
        shutil.rmtree(folder / "run" / "cache", ignore_errors=True)  # is not needed again
    return record


def finished_record(folder: Path, config: Config, data: Path, preset: MetricPreset) -> dict:
    """A finished run's record; refused if made with another setting, re-evaluated (not
    re-trained) if scored with another metric preset or lesion connectivity, or without its
    raw values."""
    if not same_config(folder / "run" / "config.yaml", config):
        raise StrokesegError(
            f"{folder}: holds a result for another setting (profile, --set or strokeseg "
            "version); use another --out"
        )
    record = _nan_for_null(json.loads((folder / "result.json").read_text(encoding="utf-8")))
    scored = (record.get("metrics", "strokeseg"), record.get("connectivity", 26))
    if scored != (preset.name, preset.connectivity) or "subjects_raw" not in record:
        start = time.perf_counter()
        checkpoint = folder / "run" / "best.ckpt"
        record.update(evaluation_record(checkpoint, data, folder, preset, config))
        record["wall_seconds"] = record.get("wall_seconds", 0.0) + time.perf_counter() - start
        write_record(record, folder / "result.json")
    return record


def write_record(record: dict, path: Path) -> None:
    """A run's record as strict JSON (NaN, e.g. an undefined HD95, as null)."""
    write_atomic(path, json.dumps(_json_clean(record), indent=2) + "\n", overwrite=True)


def _nan_for_null(value):
    if isinstance(value, dict):
        return {k: _nan_for_null(v) for k, v in value.items()}
    return math.nan if value is None else value


def table_folds(data: Path, out: Path, k: int, seed: int) -> list[list[str]]:
    """The K folds of one seed, shared by every row: made from the labelled subjects' lesion
    volumes, saved as ``OUT/folds_seed{seed}.json`` (an existing file must match)."""
    labelled = [s for s in find_dataset(data).subjects if s.masks]
    volumes = {s.id: lesion_voxels(s.masks) for s in labelled}
    folds = make_folds([s.id for s in labelled], k, seed, volumes)
    save_folds(folds, seed, out / f"folds_seed{seed}.json")
    return folds


def _json_clean(value):
    """NaN -> null, comparisons -> dicts, for strict JSON."""
    if isinstance(value, dict):
        return {k: _json_clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_clean(v) for v in value]
    if isinstance(value, DesignComparison):
        return value.to_dict()
    return None if isinstance(value, float) and math.isnan(value) else value


def run_table(
    table: int,
    data: Path,
    out: Path,
    profile: str,
    seeds: int,
    overrides: list[str] = (),
    *,
    folds: int | None = None,
    fold: int | None = None,
    rows: list[str] | None = None,
    connectivity: int | None = None,
    metrics: str = "strokeseg",
    force: bool = False,
) -> Path | None:
    """Train and evaluate every row (or ``rows``) with each seed (and each fold of ``folds``,
    or only ``fold``); finished runs (result.json) are re-used; subjects are scored as the
    ``metrics`` preset says. Writes the table unless only one fold was run, and returns its
    path (None then)."""
    check_profile(profile, force)
    preset = metric_preset(metrics, connectivity)
    dataset = find_dataset(data)
    size = slice_size(data)
    configs = row_configs(table, dataset.modality, rows)
    check_fold(folds, fold, every_fold=True)
    runs = []
    for seed in range(seeds):  # seed-major: an interrupted run still has every row
        fold_ids = [None] if folds is None else [fold] if fold is not None else range(folds)
        if folds is not None:
            table_folds(data, out, folds, seed)
        for model, config_file in configs:
            network = load_config(config_file).model.name  # a control row's differs
            extra = [*profile_overrides(profile, network, dataset.modality), *overrides]
            records = []
            for i in fold_ids:
                folder = out / model / f"seed{seed}" / ("" if i is None else f"fold{i}")
                label = f"{model} seed {seed}" + ("" if i is None else f" fold {i}/{folds}")
                if (folder / "result.json").exists():
                    config = load_config(config_file, [*extra, f"seed={seed}"])
                    record = finished_record(folder, config, data, preset)
                else:
                    cv = None if i is None else (folds, i)
                    record = run_row(
                        model,
                        config_file,
                        seed,
                        data,
                        folder,
                        extra,
                        size,
                        fold=cv,
                        preset=preset,
                    )
                records.append(record)
                print(f"table {table}: {label}: Dice {record['dice_mean']:.4f}")
            runs.append(records[0] if folds is None or fold is not None else merge_folds(records))
    if fold is not None:
        return None
    return write_table(table, profile, runs, [model for model, _ in configs], out)


def write_table(table: int, profile: str, runs: list[dict], order: list[str], out: Path) -> Path:
    """``runs.json``, the table's markdown and, with more than one row, its paired differences
    against the reference row (JSON, forest plot); returns the markdown's path."""
    runs.sort(key=lambda r: (order.index(r["model"]), r["seed"]))
    paired = paired_statistics(runs) if len(order) > 1 else None
    write_atomic(out / "runs.json", json.dumps(_json_clean(runs), indent=2) + "\n", overwrite=True)
    text = markdown(table, profile, runs)
    if paired is not None:
        paired_json = json.dumps(_json_clean(paired), indent=2) + "\n"
        write_atomic(out / f"table{table}_paired.json", paired_json, overwrite=True)
        save_figure(forest_figure(table, paired), out / f"table{table}_forest.png", overwrite=True)
        text += "\n" + paired_markdown(paired)
    return write_atomic(out / f"table{table}.md", text, overwrite=True)
