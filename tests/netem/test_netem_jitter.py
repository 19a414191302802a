"""Delay distributions as Linux netem defines them, on the pure model with fixed seeds:
the tables against their formulas, draws against the tables' mean and spread, netem's
correlation, and packet order with and without reordering."""

from __future__ import annotations

import json
import math
import random
import statistics
from statistics import NormalDist

import pytest

from protolab.errors import ConfigError
from protolab.netem.config import Direction, DirectionConfig, Distribution, LinkProfile
from protolab.netem.jitter import DIST_SCALE, TABLE_SIZE, JitterSource, table, table_moments
from protolab.netem.model import DirectionModel
from protolab.netem.profiles import Overrides, build_profile, describe

MS = 1_000_000
N = 20_000
SHAPED = (Distribution.NORMAL, Distribution.PARETO, Distribution.PARETONORMAL)


def offsets(distribution: Distribution, correlation: float = 0.0, sigma: int = 10 * MS,
            n: int = N, seed: int = 11) -> list[float]:
    """Per-packet delay minus the configured delay, in units of sigma (reordering on, so
    the model adds nothing of its own)."""
    cfg = DirectionConfig(delay_ns=100 * MS, jitter_ns=sigma, reorder=True,
                          distribution=distribution, correlation=correlation)
    m = DirectionModel(cfg, Direction.DOWN, seed=seed)
    return [(m.offer(b"x" * 100, i * MS).deliver_at_ns - i * MS - 100 * MS) / sigma
            for i in range(n)]


def lag1(values: list[float]) -> float:
    return statistics.correlation(values[:-1], values[1:])


# -- the tables are netem's (iproute2 netem/normal.c, pareto.c, paretonormal.c) -------


def test_tables_follow_their_generators_formulas() -> None:
    normal, pareto, both = (table(d) for d in SHAPED)
    assert len(normal) == len(pareto) == len(both) == TABLE_SIZE
    for j in (1, 100, 1024, 2048, 3000, 4095):
        z = NormalDist().inv_cdf((4 * j + 0.5) / 16384)
        assert normal[j] == max(-32768, min(32767, round(z * DIST_SCALE)))
        x = (1 - j / TABLE_SIZE) ** (-1 / 3)  # Pareto, shape 3, scale 1
        assert pareto[j] == min(32767, round((x - 1.5) * 4 / 3 * DIST_SCALE))
        assert both[j] == int((normal[j] + 3 * pareto[j]) / 4)
    for t in (normal, pareto, both):
        assert list(t) == sorted(t)  # inverse CDFs: ascending
    # Pareto's floor is X = 1: (1 - 1.5) * 4/3 = -2/3 sigma; its tail is cut at +4 sigma.
    assert pareto[0] == round(-2 / 3 * DIST_SCALE)
    assert pareto[-1] == 32767


def test_normal_table_is_a_unit_normal() -> None:
    mean, sd = table_moments(Distribution.NORMAL)
    assert abs(mean) < 0.002
    assert sd == pytest.approx(1.0, abs=0.005)


# -- draws: mean and spread against the definitions ---------------------------------


@pytest.mark.parametrize("distribution", [Distribution.UNIFORM, *SHAPED])
def test_uncorrelated_draws_have_the_tables_mean_and_spread(distribution: Distribution) -> None:
    got = offsets(distribution)
    mean, sd = table_moments(distribution)
    # Fixed seed; 5 standard errors so the bound is about the model, not the seed.
    assert statistics.fmean(got) == pytest.approx(mean, abs=5 * sd / math.sqrt(N))
    assert statistics.pstdev(got) == pytest.approx(sd, rel=0.03)
    assert abs(lag1(got)) < 0.03  # independent draws


def test_uniform_spans_plus_minus_jitter_and_normal_uses_jitter_as_sd() -> None:
    uniform = offsets(Distribution.UNIFORM)
    assert -1.0 <= min(uniform) < -0.99
    assert 0.99 < max(uniform) <= 1.0
    normal = offsets(Distribution.NORMAL)
    inside = sum(abs(v) <= 1.0 for v in normal) / N
    assert inside == pytest.approx(0.6827, abs=0.015)  # one sd either side


def test_pareto_is_skewed_to_the_right_as_its_table_says() -> None:
    got = sorted(offsets(Distribution.PARETO))
    median = got[N // 2]
    assert median == pytest.approx((0.5 ** (-1 / 3) - 1.5) * 4 / 3, abs=0.02)  # -0.32
    assert got[0] >= -2 / 3 - 1e-3  # never below the Pareto floor
    assert got[int(0.99 * N)] > 2.5 > 3 * abs(got[int(0.01 * N)])
    both = sorted(offsets(Distribution.PARETONORMAL))
    assert got[0] > both[0]  # the normal quarter reaches below pareto's floor


# -- netem's correlation --------------------------------------------------------------


@pytest.mark.parametrize("rho", [0.25, 0.5, 0.75])
def test_correlation_is_netems_blend_of_the_random_element(rho: float) -> None:
    got = offsets(Distribution.UNIFORM, correlation=rho)
    # u_n = (1 - rho) fresh + rho u_(n-1): an AR(1) with lag-1 autocorrelation rho,
    # mean kept, sd shrunk by sqrt((1 - rho) / (1 + rho)) (netem's "approximation").
    assert lag1(got) == pytest.approx(rho, abs=0.03)
    assert statistics.fmean(got) == pytest.approx(0.0, abs=0.03)
    expected_sd = math.sqrt((1 - rho) / (1 + rho)) / math.sqrt(3)
    assert statistics.pstdev(got) == pytest.approx(expected_sd, rel=0.05)
    normal = offsets(Distribution.NORMAL, correlation=rho)
    assert lag1(normal) == pytest.approx(rho, abs=0.06)


def test_source_blends_exactly_as_defined() -> None:
    src = JitterSource(Distribution.UNIFORM, 0.4, 1_000, random.Random(5))
    ref = random.Random(5)
    last = ref.random()
    for _ in range(50):
        last = 0.6 * ref.random() + 0.4 * last
        assert src.uniform() == pytest.approx(last, abs=1e-15)


# -- order ----------------------------------------------------------------------------


@pytest.mark.parametrize("distribution", [Distribution.UNIFORM, *SHAPED])
def test_without_reordering_no_packet_overtakes(distribution: Distribution) -> None:
    cfg = DirectionConfig(delay_ns=50 * MS, jitter_ns=20 * MS, distribution=distribution)
    m = DirectionModel(cfg, Direction.UP, seed=2)
    got = [m.offer(b"x" * 100, i * MS).deliver_at_ns for i in range(5000)]
    assert got == sorted(got)
    assert all(d >= i * MS + 50 * MS - 20 * MS * 4.01 for i, d in enumerate(got))


@pytest.mark.parametrize("distribution", [Distribution.UNIFORM, *SHAPED])
def test_with_reordering_packets_overtake_as_their_delays_say(distribution: Distribution) -> None:
    cfg = DirectionConfig(delay_ns=50 * MS, jitter_ns=20 * MS, distribution=distribution,
                          reorder=True)
    m = DirectionModel(cfg, Direction.UP, seed=2)
    got = [m.offer(b"x" * 100, i * MS).deliver_at_ns for i in range(5000)]
    overtaken = sum(b < a for a, b in zip(got, got[1:], strict=False))
    # Consecutive packets 1 ms apart swap when their delays differ by more than 1 ms.
    assert overtaken > 1000
    assert min(d - i * MS for i, d in enumerate(got)) >= 0  # never before it was sent


def test_uniform_uncorrelated_jitter_keeps_its_historic_draws() -> None:
    # Existing suites' seeds must give the same delays: randint on the jitter RNG.
    cfg = DirectionConfig(delay_ns=50 * MS, jitter_ns=5 * MS, reorder=True)
    m = DirectionModel(cfg, Direction.DOWN, seed=9)
    rng = random.Random("protolab/9/down/jitter")
    for i in range(200):
        expected = i * MS + 50 * MS + rng.randint(-5 * MS, 5 * MS)
        assert m.offer(b"x", i * MS).deliver_at_ns == expected


# -- configuration ----------------------------------------------------------------------


def test_profiles_take_distribution_and_correlation() -> None:
    p = build_profile("4g", Overrides(distribution="pareto/normal", correlation="25%"))
    assert (p.up.distribution, p.down.distribution) == (Distribution.PARETO,
                                                        Distribution.NORMAL)
    assert p.up.correlation == 0.25
    assert p.up.reorder is False  # the default stays: no overtaking
    assert LinkProfile.from_json(json.loads(json.dumps(p.to_json()))) == p
    rows = {r[0]: r[1:] for r in describe(p)}
    assert rows["jitter"] == ("sigma 5 ms pareto, 25% correlated",
                              "sigma 5 ms normal, 25% correlated")
    old = build_profile("4g").to_json()
    for side in ("up", "down"):
        for key in ("distribution", "correlation", "trace"):
            del old[side][key]  # a document stored before these keys existed
    assert LinkProfile.from_json(old) == build_profile("4g")


@pytest.mark.parametrize(("overrides", "message"), [
    ({"distribution": "gaussian"}, "--distribution 'gaussian' is not a delay distribution"),
    ({"distribution": "normal"}, "--distribution normal needs --jitter"),
    ({"correlation": "25%", "jitter": "0ms"}, "--correlation 25% needs --jitter"),
    ({"correlation": "100%", "jitter": "1ms", "delay": "5ms"}, "100% would repeat"),
    ({"correlation": "-3%", "jitter": "1ms", "delay": "5ms"}, "within 0..100%"),
])
def test_bad_shapes_are_refused_in_one_line(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_profile("lan", Overrides(**overrides))  # type: ignore[arg-type]
