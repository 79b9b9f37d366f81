"""Paired statistics: is one method better than a reference on the same subjects?

Pure functions on per-subject values. A difference is ``other - reference`` per subject; the
subject is the unit (a percentile bootstrap resamples subjects, never slices), so the interval
and the Wilcoxon signed-rank p say how sure the mean difference is given these subjects.
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


def paired_by_stratum(
    reference: Mapping[str, float],
    other: Mapping[str, float],
    volumes_ml: Mapping[str, float],
    *,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> dict[str, PairedComparison]:
    """:func:`paired_comparison` within each lesion-size stratum that holds subjects."""
    out = {}
    for stratum in STRATA:
        subjects = [s for s in reference if size_stratum(volumes_ml[s]) == stratum]
        if subjects:
            out[stratum] = paired_comparison(
                {s: reference[s] for s in subjects},
                {s: other[s] for s in subjects},
                n_resamples=n_resamples,
                seed=seed,
            )
    return out
