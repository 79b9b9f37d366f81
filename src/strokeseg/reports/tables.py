"""A benchmark table from its run records: the markdown table of mean +- std over seeds (the
raw primary endpoint first), the paired differences of every row against the reference row
(UNet++ where the table has it) by training run (:mod:`strokeseg.evaluation.design`), their
forest plot, and the merge of K fold records into one per (row, seed). Pure functions of the
records :mod:`strokeseg.jobs.benchmark` gathers.
"""

from __future__ import annotations

import math
import statistics

from strokeseg.evaluation import design, stats
from strokeseg.evaluation.figures import forest_plot
from strokeseg.evaluation.report import SHORT_LABELS

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
    *((SHORT_LABELS[k], f"{k}_mean") for k in SUBJECT_KEYS[:5]),
    (f"{SHORT_LABELS['hd95_mm']} (common subset)", "hd95_mm_mean"),
    (SHORT_LABELS["dice_pooled"], "dice_pooled"),
)
"""(heading, summary key) of each column: the per-subject metrics' means, pooled Dice."""


HD95 = "hd95_mm_mean"


def run_mean(record: dict, key: str, source: str = "subjects_raw") -> float:
    """A run record's mean over its subjects of ``key`` (NaN left out; NaN when none)."""
    values = [row[key] for row in record[source].values() if not math.isnan(row[key])]
    return statistics.mean(values) if values else math.nan


def common_hd95(runs: list[dict]) -> tuple[dict[tuple[str, int], float], int]:
    """Per (model, seed), the mean HD95 over the (run, subject) pairs where every row has it
    (both masks non-empty), and how many pairs that subset holds."""
    endpoint = design.Endpoint("hd95_mm", "subjects", "post-processed HD95")
    models = list(dict.fromkeys(r["model"] for r in runs))
    subset = design.paired_subset({m: design.runs_of(runs, m, endpoint) for m in models})
    means = {}
    for model, by_run in subset.items():
        for seed in sorted({run_seed for run_seed, _ in by_run}):
            values = [v for (s, _), d in by_run.items() if s == seed for v in d.values()]
            means[model, seed] = statistics.mean(values) if values else math.nan
    return means, sum(len(d) for d in next(iter(subset.values()), {}).values())


def markdown(table: int, profile: str, runs: list[dict]) -> str:
    """The table: one row per model, mean ± std over seeds of the per-subject means (the raw
    primary endpoint first, then post-processed secondary figures; HD95 on the subjects where
    every row has it), and each row's raw Dice minus the reference row's with the same seed
    (same split or folds, same sampling), to weigh against the seed-to-seed spread."""
    models = list(dict.fromkeys(r["model"] for r in runs))
    reference = reference_row(models)
    base = {r["seed"]: run_mean(r, "dice") for r in runs if r["model"] == reference}
    hd95, n_hd95 = common_hd95(runs)
    wall = sum(r.get("wall_seconds", 0.0) for r in runs)
    folds = runs[0].get("folds")
    tested = f"{folds}-fold cross-validation (each subject tested once per seed)"
    if not folds:
        tested = "the test split"
    n_runs = sum(r.get("folds") or 1 for r in runs)
    lines = [
        f"Table {table}, profile `{profile}`, {len({r['seed'] for r in runs})} seed(s), "
        f"{n_runs} runs, {wall / 60:.0f} min of training and evaluation. Per-subject 3D "
        f"means on {tested}, mean ± std over seeds. Primary endpoint (fixed in advance): raw "
        "Dice (p >= 0.5, no post-processing); the other columns are secondary; HD95 over the "
        f"{n_hd95} subject-runs where every row has both masks non-empty; paired: raw Dice "
        f"minus `{reference}`'s with the same seed. Metrics preset "
        f"`{runs[0].get('metrics', 'strokeseg')}` (lesions "
        f"{runs[0].get('connectivity', 26)}-connected). " + PROFILE_NOTES[profile],
        "",
        "| model | raw Dice (primary) | "
        + " | ".join(name for name, _ in COLUMNS)
        + f" | paired Δ raw Dice vs {reference} | params | inference ms/slice |",
        "|---|" + "---:|" * (len(COLUMNS) + 4),
    ]
    for model in models:
        rows = [r for r in runs if r["model"] == model]
        paired = [run_mean(r, "dice") - base[r["seed"]] for r in rows if r["seed"] in base]
        delta = "" if model == reference or not paired else mean_std(paired, signed=True)
        cells = [
            mean_std(
                [hd95[model, r["seed"]] if key == HD95 else r.get(key, math.nan) for r in rows]
            )
            for _, key in COLUMNS
        ]
        lines.append(
            f"| {model} | {mean_std([run_mean(r, 'dice') for r in rows])} | {' | '.join(cells)} "
            f"| {delta} | {rows[0]['params']:,} "
            f"| {statistics.median(r['inference_ms'] for r in rows):.1f} |"
        )
    return "\n".join(lines) + "\n"


def paired_statistics(runs: list[dict], seed: int = 0) -> dict:
    """Every row against the reference row (:mod:`strokeseg.evaluation.design`): the primary
    endpoint overall and per lesion-size stratum, then each secondary endpoint."""
    models = list(dict.fromkeys(r["model"] for r in runs))
    reference = reference_row(models)

    def endpoint(e: design.Endpoint, strata: bool = False) -> dict:
        rows = design.compare_rows(runs, reference, e, strata=strata, seed=seed)
        return {"endpoint": e.label, "rows": rows}

    return {
        "reference": reference,
        "primary": endpoint(design.PRIMARY, strata=True),
        "secondary": [endpoint(e) for e in design.SECONDARY],
    }


def _cell(c: design.DesignComparison) -> str:
    if not c.n_pairs:
        return "n/a"
    return f"{c.mean_difference:+.4f} [{c.ci_low:+.4f}, {c.ci_high:+.4f}]"


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3g}"


def paired_markdown(paired: dict) -> str:
    """The paired differences as markdown: the primary endpoint (per row: cluster interval and
    p, Holm-adjusted p, run-level t p, subject-level Wilcoxon p, per-run differences; then by
    lesion size), and each secondary endpoint."""
    reference, primary = paired["reference"], paired["primary"]
    lines = [
        f"Paired difference against `{reference}`, primary endpoint: {primary['endpoint']}. "
        "Mean over (run, subject) pairs [95 % cluster bootstrap interval: training runs "
        "(seed x fold) resampled, then subjects within each, 10,000 resamples]; p: cluster "
        f"bootstrap, Holm-adjusted across the {len(primary['rows'])} row(s) compared; run-level "
        "t over the per-run differences; subject-level Wilcoxon (subject means over seeds, "
        "treating subjects as independent although a fold's subjects share one network).",
        "",
        "| model | runs | pairs | difference [cluster 95 % CI] | p cluster | p Holm "
        "| p run-level t | p subject-level Wilcoxon | per-seed | per-run (seed/fold) |",
        "|---|---:|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for model, comparisons in primary["rows"].items():
        c = comparisons["all"]
        seeds = ", ".join(f"{s}: {d:+.4f}" for s, d in c.seeds)
        per_run = ", ".join(f"{s}/{f}: {d:+.4f}" for s, f, d in c.runs)
        lines.append(
            f"| {model} | {c.n_runs} | {c.n_pairs} | {_cell(c)} | {_p(c.p_cluster)} "
            f"| {_p(c.p_holm)} | {_p(c.p_runs)} | {_p(c.p_subjects)} | {seeds} | {per_run} |"
        )
    lines += [
        "",
        "By ground-truth lesion volume (primary endpoint, cluster interval; pairs):",
        "",
        "| model | " + " | ".join(stats.STRATA) + " |",
        "|---|" + "---|" * len(stats.STRATA),
    ]
    for model, comparisons in primary["rows"].items():
        strata = [
            f"{_cell(comparisons[s])} ({comparisons[s].n_pairs})" if s in comparisons else "none"
            for s in stats.STRATA
        ]
        lines.append(f"| {model} | " + " | ".join(strata) + " |")
    lines += [
        "",
        "Secondary endpoints (cluster interval; p cluster, Holm-adjusted within each endpoint):",
        "",
        "| endpoint | model | difference [cluster 95 % CI] | p cluster | p Holm |",
        "|---|---|---|---:|---:|",
    ]
    for secondary in paired["secondary"]:
        for model, comparisons in secondary["rows"].items():
            c = comparisons["all"]
            lines.append(
                f"| {secondary['endpoint']} | {model} | {_cell(c)} | {_p(c.p_cluster)} "
                f"| {_p(c.p_holm)} |"
            )
    return "\n".join(lines) + "\n"


def forest_figure(table: int, paired: dict):
    """Forest plot of every row's primary-endpoint difference, overall and per stratum."""
    entries = []
    for model, comparisons in paired["primary"]["rows"].items():
        for name, c in comparisons.items():
            if c.n_pairs:
                label = model if name == "all" else f"  {name}"
                note = f"runs={c.n_runs}, n={c.n_pairs}, p={c.p_cluster:.2g}"
                entries.append((label, c.mean_difference, c.ci_low, c.ci_high, note))
    return forest_plot(
        entries,
        f"Table {table}: raw Dice minus {paired['reference']}'s (95 % cluster bootstrap CI)",
        "paired difference in raw per-subject 3D Dice",
    )


def merge_folds(records: list[dict]) -> dict:
    """One (row, seed) record out of its K fold records: means over every subject (each tested
    once), pooled Dice weighted by volume, the folds' wall time summed, each subject's fold
    kept (``subject_folds``) for the statistics by training run."""
    subjects = {s: v for r in records for s, v in r["subjects"].items()}
    keys = ("model", "seed", "folds", "params", "connectivity", "metrics")
    merged = {k: records[0][k] for k in keys}
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
    merged["subjects_raw"] = {s: v for r in records for s, v in r["subjects_raw"].items()}
    merged["subject_folds"] = {s: r["fold"] for r in records for s in r["subjects"]}
    return merged
