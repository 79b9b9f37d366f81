"""``strokeseg benchmark table``: reproduce a table of the paper, one row per shipped config.

Every row of Table 1 (CT baselines), Table 2 (ablation) or Table 3 (ATLAS baselines) is trained
with each seed, evaluated on the test split, and timed at inference in the same run; the result
is a markdown table (mean +- std over seeds of the per-subject 3D Dice and IoU means) and the raw
per-run JSON. ``paper`` is the paper's recipe (a GPU job); ``cpu`` is a reduced setting that
fits a 2-core machine: the demo's setting (``configs/demo.yaml``).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch
import yaml

from strokeseg.data.io import write_atomic
from strokeseg.data.layouts import find_dataset
from strokeseg.data.slices import target_size
from strokeseg.errors import StrokesegError
from strokeseg.evaluation.model_eval import evaluate_checkpoint
from strokeseg.inference.checkpoint import load_network
from strokeseg.models import create_on_meta, has_output_bias
from strokeseg.training.config import PACKAGED_CONFIGS, load_config
from strokeseg.training.run import same_config, train

TABLES = {
    1: [
        "unet",
        "segnet",
        "attention_unet",
        "deeplabv3plus",
        "unetpp",
        "transunet",
        "swin_unet",
        "unetpp_mtl",
    ],
    2: ["unetpp", "unetpp_edge", "unetpp_lffgm", "unetpp_mtl"],
    3: [
        "unet",
        "attention_unet",
        "deeplabv3plus",
        "xnet",
        "clcinet",
        "transunet",
        "swin_unet",
        "unetpp_mtl",
    ],
}
"""The rows of each table; which data a table runs on follows from the shipped configs."""

CONFIG_FOLDERS = {"ct": "ct", "mri": "atlas"}
"""Shipped config folder per modality of the data (CT datasets, T1w MRI as ATLAS)."""

CPU_PROFILE = PACKAGED_CONFIGS / "demo.yaml"
"""The ``cpu`` profile is the demo's setting (quarter width, 64x64 patches, 8 short epochs)."""


def row_configs(table: int, modality: str) -> list[tuple[str, Path]]:
    """(model, config file) per row; the config folder follows the data (ct or atlas).

    A table the paper ran on the other modality is refused in one line that says which
    tables fit this data.
    """
    rows = [(m, _config_file(table, modality, m)) for m in TABLES[table]]
    if not all(path.exists() for _, path in rows):
        fits = [t for t in TABLES if t != table and _has_configs(t, modality)]
        other = [m for m in CONFIG_FOLDERS if m != modality and _has_configs(table, m)]
        raise StrokesegError(
            f"Table {table} has no {modality.upper()} setting: the paper ran it on "
            f"{' or '.join(m.upper() for m in other) or 'other'} data; for this dataset run "
            + (" or ".join(f"--table {t}" for t in fits) or "no table")
        )
    return rows


def _config_file(table: int, modality: str, model: str) -> Path:
    folder = CONFIG_FOLDERS.get(modality, "atlas")
    return PACKAGED_CONFIGS / folder / f"table{table}_{model}.yaml"


def _has_configs(table: int, modality: str) -> bool:
    return all(_config_file(table, modality, m).exists() for m in TABLES[table])


def modalities(table: int) -> list[str]:
    """The data modalities a table has shipped configs for (``ct``, ``mri``)."""
    return [m for m in CONFIG_FOLDERS if _has_configs(table, m)]


def profile_overrides(profile: str, model: str) -> list[str]:
    """``--set`` items for a row: none for ``paper``; for ``cpu`` every key of the demo config
    but the model name, BatchNorm only for the UNet++ variants, and the output prior only for
    models whose output layer has a bias (all but Swin-Unet)."""
    if profile == "paper":
        return []
    values = yaml.safe_load(CPU_PROFILE.read_text(encoding="utf-8"))
    values["model"].pop("name")
    if not model.startswith("unetpp"):
        values["model"]["kwargs"].pop("norm", None)
    if not has_output_bias(create_on_meta(model)):
        values["model"].pop("output_prior", None)
    return list(_dotted(values))


def _dotted(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _dotted(value, f"{prefix}{key}.")
        else:
            text = yaml.safe_dump(value, default_flow_style=True).removesuffix("...\n")
            yield f"{prefix}{key}={text.strip()}"


def inference_ms_per_slice(
    network: torch.nn.Module, size: tuple[int, int], repeats: int = 5
) -> float:
    """Median latency of the deployed network on one slice of the dataset's size."""
    x = torch.randn(1, 1, *size)
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


def mean_std(values: list[float], signed: bool = False) -> str:
    sign = "+" if signed else ""
    if len(values) == 1:
        return f"{values[0]:{sign}.4f}"
    return f"{statistics.mean(values):{sign}.4f} ± {statistics.stdev(values):.4f}"


def markdown(table: int, profile: str, runs: list[dict]) -> str:
    """The table: one row per model, mean ± std over seeds, and each row's Dice minus the first
    row's Dice with the same seed (same split, same sampling), so a difference can be weighed
    against the seed-to-seed spread."""
    models = list(dict.fromkeys(r["model"] for r in runs))
    base = {r["seed"]: r["dice_mean"] for r in runs if r["model"] == models[0]}
    wall = sum(r.get("wall_seconds", 0.0) for r in runs)
    lines = [
        f"Table {table}, profile `{profile}`, {len({r['seed'] for r in runs})} seed(s), "
        f"{len(runs)} runs, {wall / 60:.0f} min of training and evaluation. Dice and IoU: "
        "per-subject 3D means on the test split, mean ± std over seeds; paired: Dice minus "
        f"`{models[0]}`'s Dice with the same seed.",
        "",
        f"| model | Dice | IoU | pooled Dice | paired ΔDice vs {models[0]} | params "
        "| inference ms/slice |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for model in models:
        rows = [r for r in runs if r["model"] == model]
        paired = [r["dice_mean"] - base[r["seed"]] for r in rows if r["seed"] in base]
        delta = "" if model == models[0] or not paired else mean_std(paired, signed=True)
        lines.append(
            f"| {model} | {mean_std([r['dice_mean'] for r in rows])} "
            f"| {mean_std([r['iou_mean'] for r in rows])} "
            f"| {mean_std([r['dice_pooled'] for r in rows])} | {delta} | {rows[0]['params']:,} "
            f"| {statistics.median(r['inference_ms'] for r in rows):.1f} |"
        )
    return "\n".join(lines) + "\n"


def run_row(
    model: str, config_file: Path, seed: int, data: Path, folder: Path, overrides: list[str], size
) -> dict:
    """Train, evaluate and time one (row, seed); the record is saved as ``result.json``."""
    start = time.perf_counter()
    config = load_config(config_file, [*overrides, f"seed={seed}"])
    checkpoint = train(config, data, folder / "run") / "best.ckpt"
    summary = evaluate_checkpoint(checkpoint, data, folder / "evaluation", overwrite=True)
    network, _ = load_network(checkpoint)
    keys = ("dice_mean", "dice_std", "iou_mean", "iou_std", "dice_pooled", "iou_pooled")
    record = {
        "model": model,
        "seed": seed,
        "params": sum(p.numel() for p in network.parameters()),
        "inference_ms": inference_ms_per_slice(network, size),
        "n_subjects": summary["n_subjects"],
        **{k: summary[k] for k in keys},
        "wall_seconds": time.perf_counter() - start,
    }
    write_atomic(folder / "result.json", json.dumps(record, indent=2) + "\n", overwrite=True)
    return record


def check_profile(profile: str, force: bool = False) -> None:
    """Refuse the paper's recipe without a GPU: on CPU cores a table takes months."""
    if profile == "paper" and not force and not torch.cuda.is_available():
        raise StrokesegError(
            "--profile paper is the paper's full recipe (full-width models, 100 epochs per row) "
            "and needs a GPU; none is visible here, so it would run for months. Run "
            "--profile cpu (the demo setting) here, or pass --force to start it anyway"
        )


def run_table(
    table: int,
    data: Path,
    out: Path,
    profile: str,
    seeds: int,
    overrides: list[str] = (),
    *,
    force: bool = False,
) -> Path:
    """Train and evaluate every row with each seed; finished runs (result.json) are re-used."""
    check_profile(profile, force)
    dataset = find_dataset(data)
    size = slice_size(data)
    rows = row_configs(table, dataset.modality)
    runs = []
    for seed in range(seeds):  # seed-major: an interrupted run still has every row
        for model, config_file in rows:
            folder = out / model / f"seed{seed}"
            extra = [*profile_overrides(profile, model), *overrides]
            if (folder / "result.json").exists():
                config = load_config(config_file, [*extra, f"seed={seed}"])
                if not same_config(folder / "run" / "config.yaml", config):
                    raise StrokesegError(
                        f"{folder}: holds a result for another setting (profile, --set or "
                        "strokeseg version); use another --out"
                    )
                runs.append(json.loads((folder / "result.json").read_text(encoding="utf-8")))
            else:
                runs.append(run_row(model, config_file, seed, data, folder, extra, size))
            print(f"table {table}: {model} seed {seed}: Dice {runs[-1]['dice_mean']:.4f}")
    order = [model for model, _ in rows]
    runs.sort(key=lambda r: (order.index(r["model"]), r["seed"]))
    write_atomic(out / "runs.json", json.dumps(runs, indent=2) + "\n", overwrite=True)
    text = markdown(table, profile, runs)
    return write_atomic(out / f"table{table}.md", text, overwrite=True)
