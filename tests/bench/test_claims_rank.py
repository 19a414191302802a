"""`ranks_differ` (the mean and the p99 rank two variants differently), `page_total`
(one value per burst of concurrent requests) and `goodput`, on made-up samples."""

from __future__ import annotations

import random

import pytest

from protolab.bench.claims import (
    METRICS,
    CellView,
    Claim,
    Side,
    evaluate,
    parse_claim,
    rank_verdict,
)
from protolab.core.record import RequestRecord
from protolab.errors import ConfigError

RANKS = Claim("tail", "p99 over the mean", "notes", "total", "ranks_differ", Side("a"),
              Side("b"))


def record(start_ms: float, total_ms: float, *, ok: bool = True,
           body: int = 0) -> RequestRecord:
    start = int(start_ms * 1e6)
    return RequestRecord(protocol="h2", method="GET", path="/", start_ns=start,
                         connection_id=0, new_connection=False, status=200 if ok else None,
                         first_byte_ns=start + 1, done_ns=start + int(total_ms * 1e6),
                         body_bytes=body, error=None if ok else "timeout")


def cell(label: str, totals: list[float]) -> CellView:
    return CellView(label, {"loss": "2%"}, 100.0, [record(0, t) for t in totals])


def steady(centre: float, n: int = 400, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [centre + rng.uniform(-5, 5) for _ in range(n)]


def with_tail(centre: float, tail: float, every: int = 20, n: int = 400,
              seed: int = 2) -> list[float]:
    """Mostly `centre`, one sample in `every` at `tail`: a low mean, a high p99."""
    rng = random.Random(seed)
    return [tail + rng.uniform(-5, 5) if i % every == 0 else centre + rng.uniform(-5, 5)
            for i in range(n)]


def test_a_lower_mean_with_a_higher_p99_holds() -> None:
    # A: 95% at 60 ms, 5% at 600 ms -> mean 87, p99 ~600; B: always ~140 ms.
    (verdict,) = evaluate([RANKS], [cell("a", with_tail(60, 600)), cell("b", steady(140))])
    assert verdict.verdict == "holds", verdict.note
    assert verdict.value is not None
    assert verdict.value > 3  # A's p99 over B's: the side with the lower mean, turned
    assert verdict.ci_low is not None
    assert verdict.ci_low > 1
    assert "mean 0.6" in verdict.note  # A/B mean ratio below 1, said in the note


def test_the_same_order_on_both_is_refuted_whichever_side_is_a() -> None:
    fast, slow = steady(80), with_tail(150, 1000)
    for a, b in ((fast, slow), (slow, fast)):
        (verdict,) = evaluate([RANKS], [cell("a", a), cell("b", b)])
        assert verdict.verdict == "refuted", verdict.note
        assert verdict.ci_high is not None
        assert verdict.ci_high < 1


def test_it_holds_when_b_is_the_one_with_the_lower_mean_and_higher_tail() -> None:
    (verdict,) = evaluate([RANKS], [cell("a", steady(140)), cell("b", with_tail(60, 600))])
    assert verdict.verdict == "holds", verdict.note


def test_means_that_cannot_be_told_apart_are_inconclusive() -> None:
    (verdict,) = evaluate([RANKS], [cell("a", steady(100, seed=3)),
                                    cell("b", steady(100, seed=4))])
    assert verdict.verdict == "inconclusive"


def test_too_few_samples_are_inconclusive_with_a_reason() -> None:
    (verdict,) = evaluate([RANKS], [cell("a", [10.0]), cell("b", steady(100))])
    assert verdict.verdict == "inconclusive"
    assert verdict.value is None
    assert "too few samples" in verdict.note


@pytest.mark.parametrize(("mean", "tail", "word"), [
    ((0.8, 0.9), (1.5, 3.0), "holds"),
    ((0.8, 0.9), (0.5, 0.9), "refuted"),
    ((0.8, 0.9), (0.9, 1.2), "inconclusive"),
    ((1.1, 1.3), (0.3, 0.6), "holds"),  # B: the lower mean and the higher tail
    ((1.1, 1.3), (1.2, 2.0), "refuted"),
    ((0.9, 1.1), (2.0, 3.0), "inconclusive"),  # the means do not rank them
])
def test_the_rank_verdict_follows_both_intervals(mean: tuple[float, float],
                                                 tail: tuple[float, float], word: str) -> None:
    assert rank_verdict(mean, tail)[0] == word


def test_a_ranks_claim_is_parsed_with_its_quantile_and_refused_without_b() -> None:
    base = {"id": "t", "text": "t", "source": "s", "metric": "total",
            "relation": "ranks_differ", "a": "x", "b": "y", "quantile": 0.999}
    claim = parse_claim(base, "claim 1", ["x", "y"])
    assert claim.quantile == 0.999
    assert "p99.9" in claim.prediction()
    with pytest.raises(ConfigError, match="ranks_differ needs b"):
        parse_claim({k: v for k, v in base.items() if k != "b"}, "claim 1", ["x", "y"])
    with pytest.raises(ConfigError, match="quantile in"):
        parse_claim({**base, "quantile": 0.3}, "claim 1", ["x", "y"])


def test_page_total_is_one_value_per_burst_of_concurrent_requests() -> None:
    # Two repetitions of three requests issued at once; a failed request spoils its burst.
    first = [record(0, 100), record(1, 250), record(2, 180)]
    second = [record(1000, 90), record(1000, 120), record(1001, 300)]
    spoilt = [record(5000, 50), record(5001, 70, ok=False)]
    view = CellView("x", {}, 50.0, [*second, *first, *spoilt])
    assert METRICS["page_total"][1](view) == pytest.approx([251.0, 301.0])


def test_goodput_is_body_bits_over_the_whole_request() -> None:
    view = CellView("x", {}, 50.0, [record(0, 1000, body=1_250_000)])  # 10 Mbit in 1 s
    assert METRICS["goodput"][1](view) == pytest.approx([10.0])
