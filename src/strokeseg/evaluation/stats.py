"""Paired statistics: is one method better than a reference on the same subjects?

Pure functions on paired differences (``other - reference``). :func:`paired_comparison` takes
the subject as the unit (a percentile bootstrap resamples subjects, never slices; Wilcoxon
signed-rank p). When subjects share a trained network (the folds of a benchmark),
:func:`cluster_bootstrap` resamples the networks and then subjects within each
(:mod:`strokeseg.evaluation.design` builds on it); :func:`holm` adjusts a family of p-values.
Lesion-size strata follow the ground-truth lesion volume: < 1 mL, 1-10 mL, > 10 mL.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

STRATA: tuple[str, ...] = ("< 1 mL", "1-10 mL", "> 10 mL")


def size_stratum(volume_ml: float) -> str:
    """The lesion-size stratum of a ground-truth lesion volume (1 and 10 mL fall in 1-10)."""
    if volume_ml < 1:
        return STRATA[0]
    return STRATA[1] if volume_ml <= 10 else STRATA[2]


def bootstrap_ci(
    values: np.ndarray | list[float],
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean: ``n_resamples`` resamples of the values with
    replacement (seeded), the (1-c)/2 and (1+c)/2 quantiles of their means. NaN when empty."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (n_resamples, values.size))].mean(axis=-1)
    return percentile_interval(means, confidence)


def percentile_interval(means: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The (1-c)/2 and (1+c)/2 quantiles of bootstrap means; NaN without resamples."""
    if len(means) == 0:
        return float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


def wilcoxon_p(differences: np.ndarray | list[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (SciPy; zero differences
    dropped). 1.0 when every difference is zero, NaN without values."""
    from scipy.stats import wilcoxon

    differences = np.asarray(differences, dtype=float)
    if differences.size == 0:
        return float("nan")
    if not np.any(differences != 0):
        return 1.0
    return float(wilcoxon(differences).pvalue)


@dataclass(frozen=True)
class PairedComparison:
    """Mean of ``other - reference`` over ``n`` subjects, its 95 % interval, Wilcoxon p."""

    n: int
    mean_difference: float
    ci_low: float
    ci_high: float
    p_value: float

    def to_dict(self) -> dict:
        return {
            k: None if isinstance(v, float) and math.isnan(v) else v
            for k, v in asdict(self).items()
        }


def paired_comparison(
    reference: Mapping[str, float],
    other: Mapping[str, float],
    *,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> PairedComparison:
    """Compare two methods' per-subject values (subject id -> value; the same subjects).
    Subjects where either value is NaN are left out."""
    if set(reference) != set(other):
        missing = sorted(set(reference) ^ set(other))
        raise ValueError(f"paired values need the same subjects; unpaired: {missing[:5]}")
    subjects = [
        s for s in sorted(reference) if not (math.isnan(reference[s]) or math.isnan(other[s]))
    ]
    differences = np.array([other[s] - reference[s] for s in subjects], dtype=float)
    low, high = bootstrap_ci(differences, n_resamples=n_resamples, seed=seed)
    mean = float(differences.mean()) if differences.size else float("nan")
    return PairedComparison(len(subjects), mean, low, high, wilcoxon_p(differences))


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm's step-down adjustment of a family of p-values (name -> p): the i-th smallest of
    m becomes max over j <= i of min(1, (m - j + 1) p_(j)). NaN stays NaN and is not counted."""
    finite = sorted((p, name) for name, p in p_values.items() if not math.isnan(p))
    adjusted, running = {}, 0.0
    for i, (p, name) in enumerate(finite):
        running = max(running, min(1.0, (len(finite) - i) * p))
        adjusted[name] = running
    return {name: adjusted.get(name, float("nan")) for name in p_values}


def cluster_bootstrap(
    groups: list[np.ndarray], n_resamples: int = 10_000, seed: int = 0
) -> np.ndarray:
    """Means of ``n_resamples`` two-stage resamples of clustered values (seeded): the groups
    (training runs) drawn with replacement, then within each drawn group as many of its
    values (subjects) drawn with replacement; each resample's mean over all drawn values."""
    groups = [np.asarray(g, dtype=float) for g in groups if len(g)]
    if not groups:
        return np.zeros(0)
    sizes = np.array([g.size for g in groups])
    padded = np.zeros((len(groups), sizes.max()))
    for i, g in enumerate(groups):
        padded[i, : g.size] = g
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, len(groups), (n_resamples, len(groups)))
    total, count = np.zeros(n_resamples), np.zeros(n_resamples)
    for slot in range(len(groups)):
        n = sizes[drawn[:, slot]][:, None]
        within = np.floor(rng.random((n_resamples, padded.shape[1])) * n).astype(int)
        taken = padded[drawn[:, slot][:, None], within]
        total += np.where(np.arange(padded.shape[1]) < n, taken, 0.0).sum(axis=1)
        count += n[:, 0]
    return total / count


def bootstrap_p(means: np.ndarray) -> float:
    """Two-sided p of "the mean difference is 0" from bootstrap means: twice the smaller share
    of resamples on either side of 0 (at most 1); NaN without resamples."""
    means = np.asarray(means, dtype=float)
    if means.size == 0:
        return float("nan")
    return float(min(1.0, 2 * min(np.mean(means <= 0), np.mean(means >= 0))))


def one_sample_t_p(values: np.ndarray | list[float]) -> float:
    """Two-sided one-sample t-test p of mean 0 (SciPy); NaN for fewer than two values; when
    every value is equal, 1.0 if they are 0 and 0.0 otherwise."""
    from scipy.stats import ttest_1samp

    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return float("nan")
    if np.all(values == values[0]):
        return 1.0 if values[0] == 0 else 0.0
    return float(ttest_1samp(values, 0.0).pvalue)
