"""Which rows a benchmark table trains, from which shipped config, and with which profile.

The rows of the paper's tables and the controls beside them, the config file of each row for the
data's modality, and the ``--set`` items of a ``--profile`` (``paper``: none; ``cpu``: the demo's
setting, ``configs/demo.yaml``).
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from strokeseg.errors import StrokesegError
from strokeseg.models import create_on_meta, has_output_bias
from strokeseg.reports.tables import REFERENCE
from strokeseg.training.config import PACKAGED_CONFIGS

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

CONTROLS = {
    2: ["unetpp_boundary_bce", "unetpp_laplacian"],
}
"""Rows beside a table's own, not in the paper, run with ``--rows``: UNet++ with its BCE
up-weighted on the lesion edge band (extra boundary supervision, no second head) and UNet++
with Eq. 5 but no edge branch, which tell the boundary terms apart from the multi-task branch.
Each has a config per modality, as the table's rows do."""

CONFIG_FOLDERS = {"ct": "ct", "mri": "atlas"}
"""Shipped config folder per modality of the data (CT datasets, T1w MRI as ATLAS)."""

CPU_PROFILE = PACKAGED_CONFIGS / "demo.yaml"
"""The ``cpu`` profile is the demo's setting (quarter width, 128x128 patches, 8 short epochs)."""
UNETPP_KWARGS = ("norm", "padding")
"""Keys of the profile's ``model.kwargs`` that only the UNet++ family takes."""


def row_configs(table: int, modality: str, rows: list[str] | None = None) -> list[tuple[str, Path]]:
    """(model, config file) per row; the config folder follows the data (ct or atlas).

    A table the paper ran on the other modality is refused in one line that says which
    tables fit this data. ``rows`` picks rows by name (a model, or a :data:`CONTROLS` row):
    UNet++ (the reference) first, then in the table's order; a model of another table with a
    config in the same folder may be added (UNet++ to Table 3 uses ``atlas/table3_unetpp``).
    """
    models = TABLES[table]
    if not _has_configs(table, modality):
        fits = [t for t in TABLES if t != table and _has_configs(t, modality)]
        other = [m for m in CONFIG_FOLDERS if m != modality and _has_configs(table, m)]
        raise StrokesegError(
            f"Table {table} has no {modality.upper()} setting: the paper ran it on "
            f"{' or '.join(m.upper() for m in other) or 'other'} data; for this dataset run "
            + (" or ".join(f"--table {t}" for t in fits) or "no table")
        )
    if rows is None:
        return [(m, _config_file(table, modality, m)) for m in models]
    if not rows:
        raise StrokesegError("--rows: name at least one row")

    def order(model: str) -> tuple[bool, bool, int]:
        return (
            model != REFERENCE,
            model not in models,
            models.index(model) if model in models else 0,
        )

    chosen = []
    for model in sorted(dict.fromkeys(rows), key=order):
        candidates = [table, *(t for t in TABLES if t != table)]
        found = [_config_file(t, modality, model) for t in candidates]
        found = [f for f in found if f.exists()]
        if not found:
            raise StrokesegError(
                f"--rows {model}: no config for it in {CONFIG_FOLDERS.get(modality, 'atlas')}/; "
                f"rows of Table {table}: {', '.join(models + CONTROLS.get(table, []))}"
            )
        chosen.append((model, found[0]))
    return chosen


def _config_file(table: int, modality: str, model: str) -> Path:
    """CT rows have a config per table (Tables 1 and 2 ran on CT); every ATLAS config is named
    for Table 3, the paper's one ATLAS table, whichever table runs it on MRI."""
    folder = CONFIG_FOLDERS.get(modality, "atlas")
    return PACKAGED_CONFIGS / folder / f"table{3 if folder == 'atlas' else table}_{model}.yaml"


def _has_configs(table: int, modality: str) -> bool:
    return all(_config_file(table, modality, m).exists() for m in TABLES[table])


def modalities(table: int) -> list[str]:
    """The data modalities a table has shipped configs for (``ct``, ``mri``)."""
    return [m for m in CONFIG_FOLDERS if _has_configs(table, m)]


def profile_overrides(profile: str, model: str, modality: str = "mri") -> list[str]:
    """``--set`` items for a row: none for ``paper``; for ``cpu`` every key of the demo config
    but the model name, BatchNorm and replicate padding only for the UNet++ variants, the
    output prior only for models whose output layer has a bias (all but Swin-Unet), and the
    left-right mirror only for MRI (template-registered as ATLAS; CT is in scanner space)."""
    if profile == "paper":
        return []
    values = yaml.safe_load(CPU_PROFILE.read_text(encoding="utf-8"))
    values["model"].pop("name")
    if modality == "ct":
        values["data"].pop("mirror", None)
    if not model.startswith("unetpp"):
        for key in UNETPP_KWARGS:
            values["model"]["kwargs"].pop(key, None)
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


def check_profile(profile: str, force: bool = False) -> None:
    """Refuse the paper's recipe without a GPU: on CPU cores a table takes months."""
    if profile == "paper" and not force and not torch.cuda.is_available():
        raise StrokesegError(
            "--profile paper is the paper's full recipe (full-width models, 100 epochs per row) "
            "and needs a GPU; none is visible here, so it would run for months. Run "
            "--profile cpu (the demo setting) here, or pass --force to start it anyway"
        )
