"""Statistics against known distributions: seeded, no sockets, no sleeping."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from protolab.core.rtt import HANDSHAKE_RTTS
from protolab.core.stats import (
    MAX_VALUE,
    SCALE,
    Histogram,
    Summary,
    bootstrap_medians,
    fit_line,
    in_rtts,
    median_ci,
    median_ratio,
    quantile_ci,
    summarize,
    t_quantile,
)


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(round(p / 100 * len(ordered), 9)))  # no float ceil artefacts
    return ordered[rank - 1]


def within_hdr(reported: float, exact: float) -> bool:
    # 3 significant digits: 0.1% of the value, or one histogram unit (1/SCALE).
    return abs(reported - exact) <= max(exact * 1e-3, 1 / SCALE) + 1e-9


@pytest.mark.parametrize(
    "draw",
    [
        pytest.param(lambda r: r.uniform(10.0, 110.0), id="uniform-10-110ms"),
        pytest.param(lambda r: r.expovariate(1 / 25.0), id="exponential-mean-25ms"),
        pytest.param(lambda r: r.lognormvariate(0.0, 2.0), id="lognormal-wide"),
    ],
)
def test_percentiles_match_nearest_rank_within_hdr_precision(draw: object) -> None:
    rng = random.Random(7)
    values = [draw(rng) for _ in range(20_000)]  # type: ignore[operator]
    summary = summarize(values, rng_seed=1)
    for p, reported in ((50, summary.p50), (90, summary.p90), (99, summary.p99),
                        (99.9, summary.p999)):
        assert within_hdr(reported, nearest_rank(values, p)), (p, reported)
    assert summary.n == 20_000
    assert summary.min == min(values)
    assert summary.max == max(values)
    assert summary.mean == pytest.approx(sum(values) / len(values))
    assert summary.p50 <= summary.p90 <= summary.p99 <= summary.p999 <= summary.max * 1.001


def test_uniform_percentiles_near_theory() -> None:
    rng = random.Random(3)
    summary = summarize([rng.uniform(0, 100) for _ in range(50_000)], rng_seed=0)
    assert summary.p50 == pytest.approx(50, abs=1)
    assert summary.p90 == pytest.approx(90, abs=1)
    assert summary.p99 == pytest.approx(99, abs=0.3)
    assert summary.sd == pytest.approx(100 / math.sqrt(12), rel=0.02)


def test_exponential_percentiles_near_theory() -> None:
    rng = random.Random(11)
    mean = 20.0
    summary = summarize([rng.expovariate(1 / mean) for _ in range(50_000)], rng_seed=0)
    assert summary.p50 == pytest.approx(mean * math.log(2), rel=0.03)
    assert summary.p90 == pytest.approx(mean * math.log(10), rel=0.03)
    assert summary.p99 == pytest.approx(mean * math.log(100), rel=0.05)
    assert summary.mean == pytest.approx(mean, rel=0.02)
    assert summary.sd == pytest.approx(mean, rel=0.03)


def test_median_ci_covers_true_median_at_about_the_nominal_rate() -> None:
    """Over many seeded experiments the 95% interval holds the true median ~95% of the time."""
    true_median = 10 * math.log(2)
    rng = random.Random(5)
    covered = 0
    trials = 200
    for trial in range(trials):
        sample = [rng.expovariate(1 / 10) for _ in range(101)]
        low, high = median_ci(sample, rng=trial)
        assert low <= float(np.median(sample)) <= high
        covered += low <= true_median <= high
    assert 0.88 <= covered / trials <= 0.99


def test_summary_ci_covers_median_and_is_reproducible() -> None:
    rng = random.Random(2)
    values = [rng.uniform(40, 60) for _ in range(500)]
    first = summarize(values, rng_seed=42)
    assert first == summarize(values, rng_seed=42)
    assert first.median_ci_low <= 50 <= first.median_ci_high
    assert first.median_ci_high - first.median_ci_low < 3
    assert summarize(values, rng_seed=43) != first  # the seed is really used


@pytest.mark.parametrize("n", [1, 2, 9, 10, 51])
def test_order_statistic_bootstrap_matches_brute_force(n: int) -> None:
    """The O(1)-per-resample median bootstrap has the same distribution as resampling."""
    rng = np.random.default_rng(n)
    values = rng.exponential(10, size=n)
    fast = bootstrap_medians(values, rng=1, resamples=40_000)
    brute = np.median(rng.choice(values, size=(40_000, n), replace=True), axis=1)
    for q in (2.5, 25, 50, 75, 97.5):
        assert np.percentile(fast, q) == pytest.approx(np.percentile(brute, q), rel=0.05, abs=0.2)
    assert set(np.unique(fast)) <= set(np.unique(brute)) | {
        (a + b) / 2 for a in values for b in values
    }


def test_single_sample_summary() -> None:
    summary = summarize([12.5])
    assert (summary.n, summary.mean, summary.sd) == (1, 12.5, 0.0)
    assert summary.median_ci_low == summary.median_ci_high == 12.5
    assert within_hdr(summary.p999, 12.5)


def test_empty_and_bad_input_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="no samples"):
        summarize([])
    with pytest.raises(ValueError, match="negative"):
        summarize([1.0, -2.0])
    with pytest.raises(ValueError, match="finite"):
        summarize([1.0, float("nan")])
    with pytest.raises(ValueError, match="within"):
        Histogram().record(MAX_VALUE * 2)
    with pytest.raises(ValueError, match="empty"):
        Histogram().percentile(50)


def test_histograms_merge_across_repetitions() -> None:
    rng = random.Random(9)
    repetitions = [[rng.expovariate(0.1) for _ in range(3000)] for _ in range(4)]
    merged = Histogram.merged(Histogram.of(rep) for rep in repetitions)
    everything = [v for rep in repetitions for v in rep]
    assert merged.count == len(everything)
    whole = Histogram.of(everything)
    for p in (50, 90, 99, 99.9):
        assert merged.percentile(p) == whole.percentile(p)
    restored = Histogram.decode(merged.encode())
    assert restored.count == merged.count
    assert restored.percentile(99) == merged.percentile(99)


def test_median_ratio_recovers_a_known_factor() -> None:
    rng = random.Random(4)
    fast = [rng.uniform(90, 110) for _ in range(400)]
    slow = [3 * rng.uniform(90, 110) for _ in range(400)]
    ratio = median_ratio(slow, fast, rng=0)
    assert ratio.value == pytest.approx(3, rel=0.03)
    assert ratio.ci_low <= 3 <= ratio.ci_high
    assert ratio.ci_low <= ratio.value <= ratio.ci_high
    assert median_ratio(slow, fast, rng=0) == ratio
    with pytest.raises(ValueError, match="median is 0"):
        median_ratio(fast, [0.0, 0.0, 1.0])


def test_ttfb_in_rtts() -> None:
    assert in_rtts(150.0, 50.0) == 3.0
    with pytest.raises(ValueError, match="positive"):
        in_rtts(1.0, 0.0)


@pytest.mark.parametrize(("stack", "rtts"), sorted(HANDSHAKE_RTTS.items()))
def test_slope_exactly_recovered_on_a_synthetic_line(stack: str, rtts: float) -> None:
    rtt = [10.0, 50.0, 100.0, 200.0]
    ttfb = [rtts * x + 0.7 for x in rtt]  # 0.7 ms of processing
    fit = fit_line(rtt, ttfb)
    assert fit.slope == pytest.approx(rtts, abs=1e-12)
    assert fit.intercept == pytest.approx(0.7, abs=1e-9)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.slope_ci_low == pytest.approx(rtts, abs=1e-9)
    assert fit.slope_ci_high == pytest.approx(rtts, abs=1e-9)
    assert fit.predict(300.0) == pytest.approx(rtts * 300 + 0.7)


def test_slope_ci_covers_true_slope_with_noise() -> None:
    rng = random.Random(1)
    rtt = [r for r in (10.0, 50.0, 100.0, 200.0) for _ in range(10)]
    ttfb = [3 * x + 1 + rng.gauss(0, 2) for x in rtt]
    fit = fit_line(rtt, ttfb)
    assert fit.slope_ci_low is not None
    assert fit.slope_ci_high is not None
    assert fit.slope_ci_low < 3 < fit.slope_ci_high
    assert fit.slope_ci_high - fit.slope_ci_low < 0.1
    assert 0.99 < fit.r2 < 1


def test_line_fit_edge_cases() -> None:
    two = fit_line([1.0, 2.0], [3.0, 5.0])
    assert (two.slope, two.intercept, two.slope_ci_low) == (2.0, 1.0, None)
    assert fit_line([1.0, 2.0, 3.0], [4.0, 4.0, 4.0]).r2 == 1.0
    with pytest.raises(ValueError, match="distinct x"):
        fit_line([5.0, 5.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="as many"):
        fit_line([1.0, 2.0], [1.0])


@pytest.mark.parametrize(
    ("df", "expected"),
    [(1, 12.7062), (2, 4.3027), (3, 3.1824), (10, 2.2281), (30, 2.0423), (200, 1.9719)],
)
def test_t_quantile_matches_tables(df: int, expected: float) -> None:
    assert t_quantile(0.95, df) == pytest.approx(expected, abs=1e-4)


def test_summary_is_frozen_and_serialisable() -> None:
    summary = summarize([1.0, 2.0, 3.0])
    with pytest.raises(AttributeError):
        summary.n = 4  # type: ignore[misc]
    assert Summary(**summary.to_json()) == summary


def test_a_quantile_interval_covers_the_true_quantile_as_often_as_it_says() -> None:
    """Distribution-free: over 1,000 samples of 300 exponential values, the 95% interval
    for the p90 holds the true p90 (ln 10) in at least 93% of them, and every interval's
    ends are sample values in order."""
    rng = np.random.default_rng(7)
    true_p90 = math.log(10)
    hits = 0
    for _ in range(1000):
        sample = rng.exponential(1.0, 300).tolist()
        low, high, bounded = quantile_ci(sample, 0.9)
        assert bounded
        assert low <= high
        assert {low, high} <= set(sample)
        hits += low <= true_p90 <= high
    assert hits >= 930


def test_too_few_samples_cannot_bound_a_high_quantile() -> None:
    low, high, bounded = quantile_ci(list(range(100)), 0.99)
    assert (high, bounded) == (99, False)  # the maximum, and said to be no bound
    assert quantile_ci(list(range(1000)), 0.99)[2]
    with pytest.raises(ValueError, match="not in"):
        quantile_ci([1.0, 2.0], 1.0)
