"""Claims and verdicts on made-up samples: holds, refuted and inconclusive are all results."""

from __future__ import annotations

import dataclasses
import random

import pytest

from protolab.bench.claims import CellView, Claim, Side, decide, evaluate, parse_claim
from protolab.core.record import RequestRecord
from protolab.errors import ConfigError


def records(ttfbs_ms: list[float]) -> list[RequestRecord]:
    return [RequestRecord(protocol="h2", method="GET", path="/", start_ns=0, connection_id=0,
                          new_connection=True, status=200, first_byte_ns=int(t * 1e6),
                          done_ns=int(t * 1e6) + 1)
            for t in ttfbs_ms]


def around(centre: float, spread: float, n: int = 40, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [centre + rng.uniform(-spread, spread) for _ in range(n)]


def cell(label: str, ttfbs: list[float], **link: str) -> CellView:
    return CellView(label, link or {"delay": "25ms"}, 50.0, records(ttfbs))


@pytest.mark.parametrize(("ci", "band", "word"), [
    ((2.9, 3.1), (2.7, 3.3), "holds"),
    ((3.5, 3.9), (2.7, 3.3), "refuted"),
    ((3.2, 3.5), (2.7, 3.3), "inconclusive"),
])
def test_the_verdict_follows_where_the_ci_lies(ci: tuple[float, float],
                                               band: tuple[float, float], word: str) -> None:
    assert decide(*ci, *band) == word


def test_a_round_trip_count_holds_when_measured_near_it() -> None:
    claim = Claim("tls13", "TLS 1.3 first byte at 3 RTT", "RFC 8446", "ttfb_rtts", "approx",
                  Side("h2-tls13"), value=3)
    (verdict,) = evaluate([claim], [cell("h2-tls13", around(150, 3))])
    assert verdict.verdict == "holds"
    assert verdict.value == pytest.approx(3, abs=0.05)
    assert verdict.ci_low is not None
    assert verdict.ci_high is not None
    assert verdict.ci_low <= 3 <= verdict.ci_high
    assert verdict.conditions == {"delay": "25ms"}


def test_faster_by_at_least_is_refuted_when_a_is_only_slightly_faster() -> None:
    claim = Claim("x", "A 40% faster", "notes", "ttfb", "faster", Side("a"), Side("b"), by=0.4)
    verdicts = evaluate([claim], [cell("a", around(95, 2)), cell("b", around(100, 2))])
    assert [v.verdict for v in verdicts] == ["refuted"]
    assert verdicts[0].value == pytest.approx(0.95, abs=0.02)


def test_noise_that_straddles_the_line_is_inconclusive() -> None:
    claim = Claim("x", "A faster", "notes", "ttfb", "faster", Side("a"), Side("b"))
    verdicts = evaluate([claim], [cell("a", around(100, 50, n=6, seed=2)),
                                  cell("b", around(100, 50, n=6, seed=3))])
    assert verdicts[0].verdict == "inconclusive"


def test_one_verdict_per_link_and_sides_on_links_of_their_own() -> None:
    cells = [cell("a", around(100, 1), loss="0%"), cell("b", around(200, 1), loss="0%"),
             cell("a", around(100, 1), loss="1%"), cell("b", around(100, 1), loss="1%")]
    claim = Claim("x", "A faster", "notes", "ttfb", "faster", Side("a"), Side("b"), by=0.2)
    assert [(v.conditions["loss"], v.verdict) for v in evaluate([claim], cells)] == [
        ("0%", "holds"), ("1%", "refuted")]
    unaffected = Claim("u", "A unaffected by loss", "paper", "ttfb", "ratio_in",
                       Side("a", {"loss": "1%"}), Side("a", {"loss": "0%"}), low=0.9, high=1.1)
    (verdict,) = evaluate([unaffected], cells)
    assert verdict.verdict == "holds"


def test_a_verdict_says_when_its_cells_link_left_deliveries_late() -> None:
    """The samples still decide; the note tells the reader the instrument stalled in the
    cells the verdict was measured on, and only in those."""
    cells = [cell("a", around(100, 1), loss="0%"), cell("b", around(200, 1), loss="0%"),
             cell("a", around(100, 1), loss="1%"), cell("b", around(200, 1), loss="1%")]
    cells[1] = dataclasses.replace(cells[1], link_late_1ms=7)
    cells[2] = dataclasses.replace(cells[2], link_late_1ms=2)
    claim = Claim("x", "A faster", "notes", "ttfb", "faster", Side("a"), Side("b"), by=0.2)
    clean_run = evaluate([claim], [dataclasses.replace(c, link_late_1ms=0) for c in cells])
    stalled = evaluate([claim], cells)
    assert [v.verdict for v in stalled] == [v.verdict for v in clean_run] == ["holds"] * 2
    assert [v.note for v in stalled] == [
        "the link left 7 deliveries ≥ 1 ms late in these cells",
        "the link left 2 deliveries ≥ 1 ms late in these cells"]
    assert [v.note for v in clean_run] == ["", ""]


def test_a_claim_about_a_missing_cell_says_so() -> None:
    claim = Claim("x", "A faster", "notes", "ttfb", "faster", Side("a"), Side("b"))
    (verdict,) = evaluate([claim], [cell("a", around(100, 1))])
    assert verdict.verdict == "inconclusive"
    assert "no cell of b" in verdict.note


@pytest.mark.parametrize(("table", "words"), [
    ({"id": "x", "text": "t", "source": "s", "metric": "speed", "relation": "approx",
      "a": "h2", "value": 3}, "unknown metric 'speed'"),
    ({"id": "x", "text": "t", "source": "s", "metric": "ttfb", "relation": "about",
      "a": "h2", "value": 3}, "unknown relation 'about'"),
    ({"id": "x", "text": "t", "source": "s", "metric": "ttfb", "relation": "faster",
      "a": "h2"}, "needs b"),
    ({"id": "x", "text": "t", "source": "s", "metric": "ttfb", "relation": "faster",
      "a": "h9", "b": "h2"}, "not a variant of this suite"),
    ({"id": "x", "text": "t", "source": "s", "metric": "ttfb", "relation": "approx",
      "a": "h2", "value": float("nan")}, "finite number"),
    ({"id": "x", "text": "t", "source": "s", "metric": "ttfb", "relation": "ratio_in",
      "a": "h2", "b": "h2", "low": 2, "high": 1}, "low <= high"),
    ({"id": "x", "text": "t", "source": "s", "metric": "ttfb", "relation": "approx",
      "a": "h2", "value": 3, "colour": "red"}, "unknown key(s) ['colour']"),
])
def test_mistakes_in_a_claim_are_named(table: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_claim(table, "suite: claim 1", ["h2"])
    assert words in str(info.value)


def test_above_and_below_a_value_on_the_requests_of_one_path() -> None:
    slow_first = records([520.0] * 5) + [dataclasses.replace(r, path="/slow")
                                         for r in records([900.0] * 5)]
    view = CellView("h1", {"delay": "25ms"}, 50.0, slow_first)
    waits = Claim("hol", "fast ones wait", "notes", "ttfb", "above", Side("h1"), value=500,
                  path="/")
    quick = Claim("no-hol", "fast ones quick", "notes", "ttfb", "below", Side("h1"), value=500,
                  path="/")
    assert [v.verdict for v in evaluate([waits, quick], [view])] == ["holds", "refuted"]
