"""The verdict table `bench` prints after a run: at 80 columns, with each link parameter
named (a slope's RTTs as `rtt 10, 20 ms`, not a bare `10, 20`)."""

from __future__ import annotations

import io

from rich.console import Console

from protolab.bench.session import judge
from protolab.bench.suite import expand, parse_suite
from protolab.report.progress import claims_table, verdict_table, where_words
from tests.bench.test_store import record


def test_a_slope_and_a_comparison_name_their_link_within_80_columns() -> None:
    suite = parse_suite({
        "name": "where", "repetitions": 1, "warmup": 0,
        "variant": [{"label": "h1-clear", "protocol": "h1", "tls": False},
                    {"label": "h2-tls13", "protocol": "h2"}],
        "link": {"overrides": {"loss": "1%"}, "sweep": {"delay": ["5ms", "10ms"]}},
        "claim": [{"id": "h1-clear-2rtt", "text": "2 RTT", "source": "RFC 9293",
                   "metric": "ttfb", "relation": "slope", "a": "h1-clear", "value": 2,
                   "tolerance": 0.25},
                  {"id": "h1-beats-tls13", "text": "cleartext first", "source": "RFC 8446",
                   "metric": "ttfb", "relation": "faster", "a": "h1-clear", "b": "h2-tls13",
                   "by": 0.1}]})
    cells = expand(suite)
    # TTFB 2 RTT (+1 ms) in cleartext, 3 RTT over TLS 1.3, a little noise on each.
    measured = {c.index: [record(i, ttfb_ms=(2 if c.variant.label == "h1-clear" else 3)
                                 * c.rtt_ms + 1 + i % 3 * 0.1, total_ms=200.0)
                          for i in range(6)] for c in cells}
    verdicts = judge(suite, cells, measured)
    out = io.StringIO()
    Console(file=out, width=80, color_system=None).print(verdict_table(suite, verdicts))
    lines = out.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    slope = next(line for line in lines if "h1-clear-2rtt" in line)
    assert "holds" in slope
    header = next(line for line in lines if "predicted" in line)
    start, end = header.index("where"), header.index("predicted")
    body = lines[lines.index(header) + 2:]
    where = " ".join(" ".join(line[start:end] for line in body).split())  # the column alone
    assert where.startswith("rtt 10, 20 ms ")  # the key and the unit beside the RTTs
    assert "loss 1% delay 5ms" in where
    assert "loss 1% delay 10ms" in where
    assert "the [[claim]] tables of the where suite" in out.getvalue().replace("\n", " ")
    assert where_words({}) == "-"
    assert where_words({"loss": "1%", "rtt_ms": "10, 20"}) == "loss 1%; rtt 10, 20 ms"


def test_protolab_claims_table_is_a_section_per_suite_within_80_columns() -> None:
    suite = parse_suite({
        "name": "first", "repetitions": 1, "warmup": 0,
        "variant": [{"label": "h1-clear", "protocol": "h1", "tls": False}],
        "link": {"sweep": {"delay": ["5ms", "10ms"]}},
        "claim": [{"id": "h1-clear-2rtt", "text": "a long sentence from the source " * 4,
                   "source": "RFC 9293", "metric": "ttfb", "relation": "slope",
                   "a": "h1-clear", "value": 2, "tolerance": 0.25}]})
    cells = expand(suite)
    measured = {c.index: [record(i, ttfb_ms=2 * c.rtt_ms + 1 + i % 3 * 0.1, total_ms=200.0)
                          for i in range(6)] for c in cells}
    verdicts = judge(suite, cells, measured)
    out = io.StringIO()
    Console(file=out, width=80, color_system=None).print(
        claims_table([(suite, verdicts, 12.3), (suite, verdicts, 4.0)]))
    lines = out.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert [line.split()[0] for line in lines if "(12 s)" in line or "(4 s)" in line] == [
        "first", "first"]
    rows = [line for line in lines if "h1-clear-2rtt" in line]
    assert len(rows) == 2  # one line each: the claim's words are not in the table
    assert all("holds" in row for row in rows)
