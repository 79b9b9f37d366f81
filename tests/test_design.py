"""Statistics by training run, on a hand-made nested set: two seeds x two folds x three
subjects, each value worked out by hand below."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from strokeseg.errors import StrokesegError
from strokeseg.evaluation import design, stats

# seed 0 folds {a, b, c} {d, e, f}; seed 1 folds {a, d, e} {b, c, f}: a subject is tested
# once per seed, in another fold each time. Differences other - reference per run:
DIFFS = {
    (0, 0): {"a": 0.1, "b": 0.2, "c": 0.0},  # run mean 0.1, variance (ddof 0) 0.02 / 3
    (0, 1): {"d": -0.1, "e": 0.1, "f": 0.3},  # run mean 0.1, variance 0.08 / 3
    (1, 0): {"a": 0.4, "d": -0.2, "e": 0.1},  # run mean 0.1, variance 0.18 / 3
    (1, 1): {"b": 0.2, "c": -0.1, "f": 0.5},  # run mean 0.2, variance 0.18 / 3
}
BASE = {"a": 0.5, "b": 0.4, "c": 0.6, "d": 0.3, "e": 0.2, "f": 0.5}
REFERENCE = {run: {s: BASE[s] for s in d} for run, d in DIFFS.items()}
OTHER = {run: {s: BASE[s] + v for s, v in d.items()} for run, d in DIFFS.items()}


def test_per_run_and_per_seed_differences_and_the_tests_by_hand():
    c = design.compare_runs(REFERENCE, OTHER, n_resamples=2000)
    assert (c.n_runs, c.n_pairs, c.n_subjects) == (4, 12, 6)
    assert [(s, f) for s, f, _ in c.runs] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert [d for *_, d in c.runs] == pytest.approx([0.1, 0.1, 0.1, 0.2])
    assert dict(c.seeds) == pytest.approx({0: 0.6 / 6, 1: 0.9 / 6})
    assert c.mean_difference == pytest.approx(1.5 / 12)
    # run level: mean 0.125, sample sd sqrt((3 x 0.025^2 + 0.075^2) / 3) = 0.05, so
    # t = 0.125 / (0.05 / sqrt 4) = 5 on 3 degrees of freedom
    assert c.p_runs == pytest.approx(2 * scipy_stats.t.sf(5.0, 3))
    # subject level: each subject's difference averaged over its two seeds is
    # a 0.25, b 0.2, c -0.05, d -0.15, e 0.1, f 0.4: the negative ones have ranks 1 and 3, so
    # W- = 4; 7 of the 64 sign patterns have W- <= 4 ({}, 1, 2, 3, 4, 1+2, 1+3): p = 14/64
    assert c.p_subjects == pytest.approx(14 / 64)
    assert c.ci_low < c.mean_difference < c.ci_high


def test_cluster_bootstrap_has_the_two_stage_mean_and_variance():
    groups = [np.array(list(d.values())) for d in DIFFS.values()]
    means = stats.cluster_bootstrap(groups, n_resamples=200_000, seed=1)
    # E = mean of the run means = 0.125. Var = (between-run variance of the run means +
    # mean within-run variance / 3) / 4 runs, all with ddof 0:
    between = (3 * 0.025**2 + 0.075**2) / 4  # 0.001875
    within = (0.02 + 0.08 + 0.18 + 0.18) / 3 / 4 / 3  # 0.0127778
    assert means.mean() == pytest.approx(0.125, abs=5e-4)
    assert means.var() == pytest.approx((between + within) / 4, rel=0.03)
    # wider than a bootstrap of the 12 pairs as independent subjects: mean square
    # 0.67 / 12 - 0.125^2 = 0.040208, over 12 pairs
    assert means.var() > 1.05 * 0.040208 / 12


def test_cluster_interval_and_p_when_runs_are_constant_within():
    # within-run resampling changes nothing; the mean of 4 drawn runs is k / 4 with
    # k ~ Binomial(4, 1/4): P(k = 0) = 81/256, P(k <= 2) = 243/256 < 0.975 < P(k <= 3)
    groups = [np.zeros(3), np.zeros(3), np.zeros(3), np.ones(3)]
    means = stats.cluster_bootstrap(groups, n_resamples=50_000, seed=2)
    assert set(np.unique(means)) <= {0.0, 0.25, 0.5, 0.75, 1.0}
    assert np.mean(means == 0) == pytest.approx(81 / 256, abs=0.01)
    assert stats.percentile_interval(means) == (0.0, 0.75)
    assert stats.bootstrap_p(means) == pytest.approx(2 * 81 / 256, abs=0.02)
    assert stats.bootstrap_p(np.full(10, 0.3)) == 0.0
    assert stats.bootstrap_p(np.zeros(10)) == 1.0
    assert stats.cluster_bootstrap([], n_resamples=10).size == 0


def test_holm_by_hand():
    adjusted = stats.holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": math.nan})
    # sorted a 0.01 x 3 = 0.03, c 0.03 x 2 = 0.06, b 0.04 x 1 = 0.04 -> kept at 0.06
    assert adjusted["a"] == pytest.approx(0.03)
    assert adjusted["c"] == pytest.approx(0.06) and adjusted["b"] == pytest.approx(0.06)
    assert math.isnan(adjusted["d"])
    assert stats.holm({"x": 0.2, "y": 0.7}) == pytest.approx({"x": 0.4, "y": 0.7})


def record(model: str, seed: int, values: dict[str, float], hd95: dict[str, float]) -> dict:
    folds = {s: f for (run_seed, f), d in DIFFS.items() if run_seed == seed for s in d}
    subjects = {
        s: {"dice": v, "lesion_f1": v, "hd95_mm": hd95.get(s, 5.0), "gt_volume_ml": 2.0}
        for s, v in values.items()
    }
    post = {s: {**row, "dice": row["dice"] - 0.1} for s, row in subjects.items()}
    return {
        "model": model,
        "seed": seed,
        "subjects_raw": subjects,
        "subjects": post,
        "subject_folds": folds,
    }


def nested_records(hd95_missing: dict[tuple[str, int], set[str]] | None = None) -> list[dict]:
    hd95_missing = hd95_missing or {}
    records = []
    for model, shift in (("unetpp", None), ("unetpp_mtl", 1.0), ("unetpp_edge", 0.0)):
        for seed in (0, 1):
            values = {}
            for (run_seed, _), d in DIFFS.items():
                if run_seed == seed:
                    for s, v in d.items():
                        values[s] = BASE[s] + (0.0 if shift is None else v * shift)
            hd95 = {s: math.nan for s in hd95_missing.get((model, seed), set())}
            records.append(record(model, seed, values, hd95))
    return records


def test_rows_against_the_reference_with_holm_across_rows():
    records = nested_records()
    rows = design.compare_rows(records, "unetpp", design.PRIMARY, strata=True)
    mtl, edge = rows["unetpp_mtl"]["all"], rows["unetpp_edge"]["all"]
    assert mtl.mean_difference == pytest.approx(0.125) and edge.mean_difference == 0.0
    assert edge.p_cluster == 1.0 and edge.p_runs == 1.0
    # two rows: the smaller p is doubled, the larger one kept (and at least the first)
    assert mtl.p_holm == pytest.approx(min(1.0, 2 * mtl.p_cluster))
    assert edge.p_holm == 1.0
    assert set(rows["unetpp_mtl"]) == {"all", "1-10 mL"}  # every lesion is 2 mL
    # post-processed secondary endpoint: both rows shifted alike, same differences
    post = design.compare_rows(records, "unetpp", design.SECONDARY[0])
    assert post["unetpp_mtl"]["all"].mean_difference == pytest.approx(0.125)


def test_rows_on_other_subjects_or_runs_are_refused():
    records = nested_records()
    records[-1]["subjects_raw"].pop("a")
    with pytest.raises(StrokesegError, match="different subjects in seed 1 fold 0"):
        design.compare_rows(records, "unetpp", design.PRIMARY)
    with pytest.raises(StrokesegError, match="different runs"):
        design.paired_differences({(0, 0): {}}, {(0, 1): {}})


def test_hd95_is_averaged_over_one_subset_shared_by_every_row():
    by_row = {
        "x": {(0, 0): {"a": 1.0, "b": math.nan}, (0, 1): {"c": 3.0}},
        "y": {(0, 0): {"a": 2.0, "b": 4.0}, (0, 1): {"c": math.nan}},
    }
    subset = design.paired_subset(by_row)
    assert subset == {"x": {(0, 0): {"a": 1.0}, (0, 1): {}}, "y": {(0, 0): {"a": 2.0}, (0, 1): {}}}
