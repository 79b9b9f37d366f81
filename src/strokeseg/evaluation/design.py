"""Paired comparisons that respect how a benchmark trains its models.

A benchmark trains one network per (seed, fold), so the subjects of one fold share a network
and are not independent draws; run-to-run spread is part of the uncertainty. Values are held
per training run, ``{(seed, fold): {subject: value}}`` (fold 0 for a single test split), and
two rows are paired within each run (same subjects, same split). Against a reference row:

- per-run differences: the mean of ``other - reference`` over a run's subjects, one per
  (seed, fold), and per seed (every subject of the seed once);
- the estimate: the mean over every (run, subject) pair;
- its 95 % interval and p: a cluster bootstrap (:func:`stats.cluster_bootstrap`: runs drawn
  with replacement, then subjects within each drawn run), p by :func:`stats.bootstrap_p`,
  Holm-adjusted across the rows compared with the reference;
- a run-level one-sample t-test over the per-run differences (n = runs);
- the subject-level Wilcoxon over each subject's difference averaged over seeds, kept and
  labelled as such: it treats subjects as independent though a fold's subjects share a network.

The primary endpoint is fixed in advance: raw per-subject 3D Dice (p >= 0.5, no
post-processing). Post-processed Dice and lesion-wise F1 are secondary.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from strokeseg.errors import StrokesegError
from strokeseg.evaluation import stats

Runs = Mapping[tuple[int, int], Mapping[str, float]]
"""Per training run (seed, fold): subject id -> value."""


@dataclass(frozen=True)
class Endpoint:
    """A per-subject metric (``key``) read from a run record's raw or post-processed values."""

    key: str
    source: str  # "subjects_raw" (p >= 0.5) or "subjects" (post-processed)
    label: str


PRIMARY = Endpoint("dice", "subjects_raw", "raw per-subject 3D Dice (p >= 0.5, no post-processing)")
SECONDARY = (
    Endpoint("dice", "subjects", "post-processed per-subject 3D Dice"),
    Endpoint("lesion_f1", "subjects_raw", "raw lesion-wise F1"),
    Endpoint("lesion_f1", "subjects", "post-processed lesion-wise F1"),
)


@dataclass(frozen=True)
class DesignComparison:
    """``other - reference`` over ``n_pairs`` (run, subject) pairs in ``n_runs`` runs: mean,
    cluster-bootstrap 95 % interval and p (``p_holm`` adjusted across rows), the run-level t
    p, the subject-level Wilcoxon p over ``n_subjects``, and each run's mean difference."""

    n_runs: int
    n_pairs: int
    n_subjects: int
    mean_difference: float
    ci_low: float
    ci_high: float
    p_cluster: float
    p_runs: float
    p_subjects: float
    runs: tuple[tuple[int, int, float], ...]  # (seed, fold, mean difference)
    seeds: tuple[tuple[int, float], ...]  # (seed, mean difference over its subjects)
    p_holm: float = float("nan")

    def to_dict(self) -> dict:
        def clean(v):
            if isinstance(v, tuple):
                return [clean(x) for x in v]
            return None if isinstance(v, float) and math.isnan(v) else v

        return {k: clean(v) for k, v in dataclasses.asdict(self).items()}


def paired_differences(reference: Runs, other: Runs) -> dict[tuple[int, int], dict[str, float]]:
    """Per run, ``other - reference`` per subject (pairs with a NaN left out); both rows need
    the same runs and, within each run, the same subjects."""
    if set(reference) != set(other):
        raise StrokesegError(
            f"benchmark: rows trained on different runs: {sorted(set(reference) ^ set(other))}"
        )
    out = {}
    for run in sorted(reference):
        ref, oth = reference[run], other[run]
        if set(ref) != set(oth):
            raise StrokesegError(
                f"benchmark: rows tested on different subjects in seed {run[0]} fold {run[1]}; "
                "finish both rows with the same seeds and folds"
            )
        out[run] = {
            s: oth[s] - ref[s]
            for s in sorted(ref)
            if not (math.isnan(ref[s]) or math.isnan(oth[s]))
        }
    return out


def compare_runs(
    reference: Runs, other: Runs, *, n_resamples: int = 10_000, seed: int = 0
) -> DesignComparison:
    """Compare two rows' per-run values (see the module docstring)."""
    diffs = paired_differences(reference, other)
    groups = [np.array(list(d.values())) for d in diffs.values()]
    pooled = np.concatenate(groups) if groups else np.zeros(0)
    means = stats.cluster_bootstrap(groups, n_resamples, seed)
    per_subject: dict[str, list[float]] = {}
    per_seed: dict[int, list[float]] = {}
    for (run_seed, _), d in diffs.items():
        per_seed.setdefault(run_seed, []).extend(d.values())
        for subject, value in d.items():
            per_subject.setdefault(subject, []).append(value)
    runs = tuple((s, f, float(np.mean(list(d.values())))) for (s, f), d in diffs.items() if d)
    low, high = stats.percentile_interval(means)
    return DesignComparison(
        n_runs=len(runs),
        n_pairs=int(pooled.size),
        n_subjects=len(per_subject),
        mean_difference=float(pooled.mean()) if pooled.size else float("nan"),
        ci_low=low,
        ci_high=high,
        p_cluster=stats.bootstrap_p(means),
        p_runs=stats.one_sample_t_p([r[2] for r in runs]),
        p_subjects=stats.wilcoxon_p([float(np.mean(v)) for v in per_subject.values()]),
        runs=runs,
        seeds=tuple((s, float(np.mean(v))) for s, v in sorted(per_seed.items()) if v),
    )


def with_holm(comparisons: Mapping[str, DesignComparison]) -> dict[str, DesignComparison]:
    """The comparisons with ``p_holm``: their cluster p adjusted by Holm across the family."""
    adjusted = stats.holm({name: c.p_cluster for name, c in comparisons.items()})
    return {name: dataclasses.replace(c, p_holm=adjusted[name]) for name, c in comparisons.items()}


def paired_subset(by_row: Mapping[str, Runs]) -> dict[str, dict]:
    """Every row restricted to the (run, subject) pairs where every row's value is finite
    (e.g. HD95, undefined when a mask is empty), so that rows are averaged over one subset."""
    rows = list(by_row.values())
    keep = {
        (run, s)
        for run, values in (rows[0].items() if rows else ())
        for s in values
        if all(not math.isnan(row.get(run, {}).get(s, math.nan)) for row in rows)
    }
    return {
        name: {
            run: {s: v for s, v in values.items() if (run, s) in keep}
            for run, values in row.items()
        }
        for name, row in by_row.items()
    }


def runs_of(records: list[dict], model: str, endpoint: Endpoint) -> dict:
    """A row's per-run values of an endpoint, from its (fold-merged) run records."""
    out: dict[tuple[int, int], dict[str, float]] = {}
    for record in records:
        if record["model"] == model:
            folds = record.get("subject_folds", {})
            for subject, row in record[endpoint.source].items():
                run = (record["seed"], folds.get(subject, 0))
                out.setdefault(run, {})[subject] = float(row[endpoint.key])
    return out


def _restrict(runs: Runs, subjects: set[str]) -> dict:
    return {run: {s: v for s, v in values.items() if s in subjects} for run, values in runs.items()}


def compare_rows(
    records: list[dict], reference: str, endpoint: Endpoint, *, strata: bool = False, seed: int = 0
) -> dict:
    """Every other row against ``reference`` on ``endpoint``: ``{model: {"all": comparison,
    stratum: comparison, ...}}``, Holm across the rows' "all"; strata by ground-truth volume."""
    models = [m for m in dict.fromkeys(r["model"] for r in records) if m != reference]
    ref = runs_of(records, reference, endpoint)
    volumes = {
        s: row["gt_volume_ml"]
        for r in records
        if r["model"] == reference
        for s, row in r[endpoint.source].items()
    }
    out = {}
    for model in models:
        other = runs_of(records, model, endpoint)
        out[model] = {"all": compare_runs(ref, other, seed=seed)}
        for stratum in stats.STRATA if strata else ():
            chosen = {s for s, v in volumes.items() if stats.size_stratum(v) == stratum}
            if chosen:
                out[model][stratum] = compare_runs(
                    _restrict(ref, chosen), _restrict(other, chosen), seed=seed
                )
    adjusted = with_holm({model: c["all"] for model, c in out.items()})
    for model, comparison in adjusted.items():
        out[model]["all"] = comparison
    return out
