"""Metric presets: the figures each stroke-lesion leaderboard reports, computed as it does.

Every preset scores the same per-subject rows (``evaluation.report``); what a leaderboard
fixes is how lesions are counted and matched, and which columns it reports:

- ``atlas`` (ATLAS R2.0): lesions are face-connected components (``scipy.ndimage.label``'s
  default, 6-connectivity in 3D); a lesion is found by a 1-voxel overlap; Dice, volume
  difference in voxels, simple lesion-count difference, lesion-wise F1.
- ``isles22`` (ISLES'22): 26-connected components (``cc3d``), 1-voxel overlap; Dice, absolute
  volume difference in mL, absolute lesion-count difference, lesion-wise F1.
- ``isles26`` (ISLES'26, scored with the ``panoptica`` package): 26-connected components
  matched one to one at IoU >= 0.25; Dice, lesion-wise F1 (panoptica's recognition quality),
  absolute lesion-count difference, absolute volume difference in mL, and the PR-AUC of the
  probability map (only where one exists: a model's evaluation, not mask folders).
- ``strokeseg`` (default): every column, lesions 26-connected (or 6 with ``connectivity``),
  1-voxel overlap.

All of them score a subject with neither a true nor a predicted lesion 1.0.
"""

from __future__ import annotations

from dataclasses import dataclass

from strokeseg.errors import StrokesegError


@dataclass(frozen=True)
class MetricPreset:
    """How lesions are counted (``connectivity``) and matched (``min_iou``: None for a
    1-voxel overlap), and the (leaderboard's name, per-subject column) pairs it reports."""

    name: str
    title: str
    connectivity: int
    min_iou: float | None
    columns: tuple[tuple[str, str], ...]


PRESETS: dict[str, MetricPreset] = {
    "strokeseg": MetricPreset("strokeseg", "strokeseg", 26, None, ()),
    "atlas": MetricPreset(
        "atlas",
        "ATLAS R2.0",
        6,
        None,
        (
            ("Dice", "dice"),
            ("Volume Difference (voxels)", "abs_volume_difference_voxels"),
            ("Simple Lesion Count difference", "lesion_count_difference"),
            ("Lesion-wise F1", "lesion_f1"),
        ),
    ),
    "isles22": MetricPreset(
        "isles22",
        "ISLES'22",
        26,
        None,
        (
            ("Dice", "dice"),
            ("Absolute volume difference (mL)", "abs_volume_difference_ml"),
            ("Absolute lesion count difference", "lesion_count_difference"),
            ("Lesion-wise F1", "lesion_f1"),
        ),
    ),
    "isles26": MetricPreset(
        "isles26",
        "ISLES'26",
        26,
        0.25,
        (
            ("Dice", "dice"),
            ("Lesion-wise F1 (IoU >= 0.25)", "lesion_f1"),
            ("Absolute lesion count difference", "lesion_count_difference"),
            ("Absolute volume difference (mL)", "abs_volume_difference_ml"),
            ("PR-AUC", "pr_auc"),
        ),
    ),
}


def metric_preset(name: str, connectivity: int | None = None) -> MetricPreset:
    """The preset ``name``; ``connectivity`` may change the default preset's lesions, while a
    leaderboard's own connectivity cannot be changed (refused in one line)."""
    if name not in PRESETS:
        raise StrokesegError(
            f"--metrics {name}: unknown preset; choose one of {', '.join(PRESETS)}"
        )
    preset = PRESETS[name]
    if connectivity is None or connectivity == preset.connectivity:
        return preset
    if name != "strokeseg":
        raise StrokesegError(
            f"--connectivity {connectivity}: {preset.title} counts lesions with "
            f"{preset.connectivity}-connectivity; leave --connectivity out with --metrics {name}"
        )
    return MetricPreset(name, preset.title, connectivity, None, ())
