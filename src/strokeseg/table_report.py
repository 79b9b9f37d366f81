"""A benchmark table from its run records: the markdown table of mean +- std over seeds, the
paired per-subject differences of every row against the reference row (UNet++ where the table
has it), their forest plot, and the merge of K fold records into one per (row, seed). Pure
functions of the records :mod:`strokeseg.tables` gathers.
"""

from __future__ import annotations

import math
import statistics

from strokeseg.errors import StrokesegError
from strokeseg.evaluation import stats
from strokeseg.evaluation.figures import forest_plot

REFERENCE = "unetpp"
"""The row every other row is compared with (the first row where the table lacks it)."""


SUBJECT_KEYS = (
    "dice",
    "iou",
    "lesion_f1",
    "abs_volume_difference_ml",
    "abs_volume_difference_voxels",
    "hd95_mm",
    "gt_volume_ml",
    "pred_volume_ml",
)


def reference_row(models: list[str]) -> str:
    return REFERENCE if REFERENCE in models else models[0]


def mean_std(values: list[float], signed: bool = False) -> str:
    sign = "+" if signed else ""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:{sign}.4f}"
    return f"{statistics.mean(values):{sign}.4f} ± {statistics.stdev(values):.4f}"


PROFILE_NOTES = {
    "paper": "The paper's recipe: fp32, a global batch of 8, masks at p >= 0.5 (no "
    "post-processing); what remains different from the paper: docs/deviations.md.",
    "cpu": "Not the paper's recipe: the reduced CPU setting (configs/demo.yaml), its masks "
    "post-processed by the rule each run fitted on its validation subjects (raw figures: each "
    "run's evaluation/per_subject_raw.csv).",
}
"""What each ``--profile`` trains and scores, as the table states it."""

COLUMNS = (
    ("Dice", "dice_mean"),
    ("IoU", "iou_mean"),
    ("lesion F1", "lesion_f1_mean"),
    ("abs ΔV mL", "abs_volume_difference_ml_mean"),
    ("abs ΔV voxels", "abs_volume_difference_voxels_mean"),
    ("HD95 mm", "hd95_mm_mean"),
    ("pooled Dice", "dice_pooled"),
)


def markdown(table: int, profile: str, runs: list[dict]) -> str:
    """The table: one row per model, mean ± std over seeds of the per-subject means, and each
    row's Dice minus the reference row's Dice with the same seed (same split or folds, same
    sampling), so a difference can be weighed against the seed-to-seed spread."""
    models = list(dict.fromkeys(r["model"] for r in runs))
    reference = reference_row(models)
    base = {r["seed"]: r["dice_mean"] for r in runs if r["model"] == reference}
    wall = sum(r.get("wall_seconds", 0.0) for r in runs)
    folds = runs[0].get("folds")
    tested = f"{folds}-fold cross-validation (each subject tested once per seed)"
    if not folds:
        tested = "the test split"
    n_runs = sum(r.get("folds") or 1 for r in runs)
    lines = [
        f"Table {table}, profile `{profile}`, {len({r['seed'] for r in runs})} seed(s), "
        f"{n_runs} runs, {wall / 60:.0f} min of training and evaluation. Per-subject 3D "
        f"means on {tested}, mean ± std over seeds; HD95 over subjects with both masks "
        f"non-empty; paired: Dice minus `{reference}`'s Dice with the same seed. "
        + PROFILE_NOTES[profile],
        "",
        "| model | "
        + " | ".join(name for name, _ in COLUMNS)
        + f" | paired ΔDice vs {reference} | params | inference ms/slice |",
        "|---|" + "---:|" * (len(COLUMNS) + 3),
    ]
    for model in models:
        rows = [r for r in runs if r["model"] == model]
        paired = [r["dice_mean"] - base[r["seed"]] for r in rows if r["seed"] in base]
        delta = "" if model == reference or not paired else mean_std(paired, signed=True)
        cells = [mean_std([r.get(key, math.nan) for r in rows]) for _, key in COLUMNS]
        lines.append(
            f"| {model} | {' | '.join(cells)} | {delta} | {rows[0]['params']:,} "
            f"| {statistics.median(r['inference_ms'] for r in rows):.1f} |"
        )
    return "\n".join(lines) + "\n"


def subject_means(runs: list[dict], model: str, key: str) -> dict[str, float]:
    """Per subject, the mean over seeds of ``key`` for ``model`` (the subject is the unit)."""
    values: dict[str, list[float]] = {}
    for run in runs:
        if run["model"] == model:
            for subject, row in run["subjects"].items():
                values.setdefault(subject, []).append(float(row[key]))
    return {s: float(sum(v) / len(v)) for s, v in values.items()}


def paired_statistics(runs: list[dict], seed: int = 0) -> dict:
    """Every row's per-subject Dice against the reference row: overall and per lesion-size
    stratum (ground-truth volume), as :class:`strokeseg.evaluation.stats.PairedComparison`."""
    models = list(dict.fromkeys(r["model"] for r in runs))
    reference = reference_row(models)
    ref = subject_means(runs, reference, "dice")
    volumes = subject_means(runs, reference, "gt_volume_ml")
    out: dict = {"reference": reference, "metric": "dice", "rows": {}}
    for model in models:
        if model == reference:
            continue
        other = subject_means(runs, model, "dice")
        if set(other) != set(ref):
            raise StrokesegError(
                f"benchmark: {model} and {reference} were tested on different subjects; "
                "finish both rows with the same seeds and folds"
            )
        out["rows"][model] = {
            "all": stats.paired_comparison(ref, other, seed=seed),
            **stats.paired_by_stratum(ref, other, volumes, seed=seed),
        }
    return out


def _cell(c: stats.PairedComparison) -> str:
    if not c.n:
        return "n/a"
    return f"{c.mean_difference:+.4f} [{c.ci_low:+.4f}, {c.ci_high:+.4f}], p = {c.p_value:.3g}"


def paired_markdown(paired: dict) -> str:
    """The paired per-subject differences as a second markdown table."""
    reference = paired["reference"]
    lines = [
        f"Paired per-subject Dice difference against `{reference}` (subject means over seeds): "
        "mean [95 % percentile bootstrap interval over subjects, 10,000 resamples], two-sided "
        "Wilcoxon signed-rank p; by ground-truth lesion volume. n = subjects.",
        "",
        "| model | n | all subjects | " + " | ".join(stats.STRATA) + " |",
        "|---|---:|---|" + "---|" * len(stats.STRATA),
    ]
    for model, comparisons in paired["rows"].items():
        strata = [
            f"{_cell(comparisons[s])} (n = {comparisons[s].n})" if s in comparisons else "none"
            for s in stats.STRATA
        ]
        lines.append(
            f"| {model} | {comparisons['all'].n} | {_cell(comparisons['all'])} | "
            + " | ".join(strata)
            + " |"
        )
    return "\n".join(lines) + "\n"


def forest_figure(table: int, paired: dict):
    """Forest plot of every row's paired Dice difference, overall and per stratum."""
    entries = []
    for model, comparisons in paired["rows"].items():
        for name, c in comparisons.items():
            if c.n:
                label = model if name == "all" else f"  {name}"
                entries.append(
                    (label, c.mean_difference, c.ci_low, c.ci_high, f"n={c.n}, p={c.p_value:.2g}")
                )
    return forest_plot(
        entries,
        f"Table {table}: Dice minus {paired['reference']}'s, per subject (95 % bootstrap CI)",
        "paired difference in per-subject 3D Dice",
    )


def merge_folds(records: list[dict]) -> dict:
    """One (row, seed) record out of its K fold records: means over every subject (each tested
    once), pooled Dice weighted by volume, the folds' wall time summed."""
    subjects = {s: v for r in records for s, v in r["subjects"].items()}
    merged = {k: records[0][k] for k in ("model", "seed", "folds", "params", "connectivity")}
    merged["inference_ms"] = statistics.median(r["inference_ms"] for r in records)
    merged["n_subjects"] = len(subjects)
    for name in SUBJECT_KEYS[:6]:  # the per-subject metrics (not the volumes)
        values = [v[name] for v in subjects.values() if not math.isnan(v[name])]
        merged[f"{name}_mean"] = statistics.mean(values) if values else math.nan
        if name in ("dice", "iou"):
            merged[f"{name}_std"] = statistics.pstdev(values) if values else math.nan
    merged["hd95_mm_n"] = sum(not math.isnan(v["hd95_mm"]) for v in subjects.values())
    sizes = {s: v["pred_volume_ml"] + v["gt_volume_ml"] for s, v in subjects.items()}
    total = sum(sizes.values())
    merged["dice_pooled"] = (
        sum(v["dice"] * sizes[s] for s, v in subjects.items()) / total if total else 1.0
    )
    merged["wall_seconds"] = sum(r.get("wall_seconds", 0.0) for r in records)
    merged["subjects"] = subjects
    return merged
