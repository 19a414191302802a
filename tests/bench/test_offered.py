"""What a delivery trace offered during a cell, read next to what the protocol achieved.

A trace's mean over its whole period says little about the seconds a cell ran: cellular
capacity swings by an order of magnitude. The summary reads the trace over each
repetition's own span (the span goodput divides by), from the link's epoch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from protolab.bench.suite import expand, parse_suite
from protolab.bench.summary import offered_capacity, offered_note
from protolab.core.record import RequestRecord

MS = 1_000_000
EPOCH = 5_000 * MS  # when the link came up, on the records' clock


def _half_on_trace(tmp_path: Path) -> Path:
    """Opportunities every ms in the first 500 ms of each second: 12 Mbit/s, then none."""
    path = tmp_path / "half.down"
    path.write_text("".join(f"{ms}\n" for ms in range(0, 500)) + "999\n")
    return path


def _rep(start_ms: int, end_ms: int) -> list[RequestRecord]:
    return [RequestRecord(protocol="h2", method="GET", path="/bytes/1", connection_id=0,
                          new_connection=True, start_ns=EPOCH + start_ms * MS,
                          first_byte_ns=EPOCH + start_ms * MS + MS,
                          done_ns=EPOCH + end_ms * MS, status=200, body_bytes=1000)]


def test_offered_is_the_trace_over_each_repetitions_own_span(tmp_path: Path) -> None:
    suite = parse_suite({"variant": [{"protocol": "h2"}],
                         "link": {"overrides": {"trace_down": str(_half_on_trace(tmp_path))}}})
    cell = expand(suite)[0]
    reps = {0: _rep(100, 400),    # inside the on-phase: 12 Mbit/s
            1: _rep(600, 900),    # inside the off-phase: nothing offered
            2: _rep(200, 1200),   # 300 + 200 opportunities (the trace repeats) in 1 s: 6
            3: _rep(100, 200)}    # no epoch known for it: left out, not guessed
    offered = offered_capacity(cell, reps, {0: EPOCH, 1: EPOCH, 2: EPOCH})
    assert offered == {"down": pytest.approx(6.0, rel=0.01)}  # the median of 12, 0, 6
    assert offered_capacity(cell, reps, {}) == {}
    # The whole-period mean (what the suite's link says) is another number entirely.
    assert cell.params(suite)["link_capacity"]["down"]["mean_mbps"] == pytest.approx(6.012,
                                                                                   rel=0.01)


def test_an_untraced_link_offers_nothing_to_say() -> None:
    suite = parse_suite({"variant": [{"protocol": "h2"}], "link": {"overrides": {
        "rate": "10mbit"}}})
    assert offered_capacity(expand(suite)[0], {0: _rep(0, 100)}, {0: EPOCH}) == {}
    assert offered_note({"goodput": 9.0}) is None
    assert offered_note({"offered_down": 9.14, "goodput": 8.7}) == (
        "trace offered down 9.14 Mbit/s (goodput 8.7)")


@pytest.mark.netem
@pytest.mark.usefixtures("needs_link")
def test_a_bulk_transfer_over_a_trace_gets_close_to_what_it_offered(tmp_path: Path) -> None:
    # A steady 12 Mbit/s trace for 200 ms, then 3 Mbit/s for 800 ms, repeating.
    trace = tmp_path / "steps.down"
    trace.write_text("".join(f"{ms}\n" for ms in range(0, 200))
                     + "".join(f"{ms}\n" for ms in range(200, 1000, 4)))
    suite = tmp_path / "traced.toml"
    suite.write_text(f'''name = "traced"
repetitions = 2
warmup = 0
timeout_s = 60
[link]
profile = "loopback"
overrides = {{ delay = "10ms", trace_down = "{trace}", queue = "200" }}
[workload]
paths = ["/bytes/1000000"]
count = 1
[[variant]]
label = "h2"
protocol = "h2"
''')
    db, out = tmp_path / "t.db", tmp_path / "out"
    ran = subprocess.run([sys.executable, "-m", "protolab", "bench", str(suite), "--db", str(db),
                          "--out", str(out), "--json"], capture_output=True, text=True,
                         timeout=300, check=False)
    assert ran.returncode == 0, ran.stderr
    cell = json.loads(ran.stdout)["cells"][0]
    capacity = cell["link_capacity"]["down"]
    assert capacity["mean_mbps"] == pytest.approx(4.8, rel=0.02)  # (200 + 200) x 12 kbit / s
    # The transfer takes ~2 s, so its spans cover the cycle about twice: what it was
    # offered is near the mean, and TCP through the trace gets most but never more of it.
    assert 3.0 < capacity["offered"] < 7.0, capacity
    assert 0.5 * capacity["offered"] < cell["goodput_mbps"] <= 1.02 * capacity["offered"], cell
    show = subprocess.run([sys.executable, "-m", "protolab", "results", "show", "1", "--db",
                           str(db)], capture_output=True, text=True, timeout=60, check=False,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert show.returncode == 0, show.stderr
    assert "trace offered down" in show.stdout
