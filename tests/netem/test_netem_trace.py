"""Trace-driven capacity (mahimahi's format): reading files, the model on a fake clock,
profiles and suites that name traces, and one clear line for every bad file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from protolab.bench.suite import expand, load_suite
from protolab.errors import ConfigError
from protolab.netem import state, trace
from protolab.netem.config import Direction, DirectionConfig, DropRule, LinkProfile
from protolab.netem.model import DirectionModel, Verdict
from protolab.netem.profiles import Overrides, build_profile, describe, get_profile
from protolab.netem.trace import DeliveryTrace, load_trace
from protolab.netem.tracegen import generate

MS = 1_000_000
PKT = bytes(1500)


def write(tmp_path: Path, text: str, name: str = "t.down") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def traced(ms: tuple[int, ...], start_ns: int = 0, **fields: object) -> DirectionModel:
    fields.setdefault("queue_packets", 1000)
    cfg = DirectionConfig(trace=DeliveryTrace("test", ms), **fields)  # type: ignore[arg-type]
    return DirectionModel(cfg, Direction.DOWN, seed=3, start_ns=start_ns)


# -- reading files -------------------------------------------------------------------


def test_reads_a_mahimahi_trace_with_repeated_timestamps(tmp_path: Path) -> None:
    path = write(tmp_path, "0\n3\n3\n3\n10\n")
    t = load_trace("--trace-down", str(path))
    assert t.ms == (0, 3, 3, 3, 10)
    assert t.period_ms == 10
    # Five 1500-byte opportunities in 10 ms are 6 Mbit/s.
    assert t.mean_bps == pytest.approx(6e6)


def test_a_file_holding_1_is_a_12_mbit_link(tmp_path: Path) -> None:
    t = load_trace("--trace-up", str(write(tmp_path, "1\n")))
    assert t.mean_bps == pytest.approx(12e6)
    stats = t.capacity(100)
    assert (stats.mean, stats.p10, stats.p90) == pytest.approx((12.0, 12.0, 12.0))


def test_crlf_and_a_missing_final_newline_are_read(tmp_path: Path) -> None:
    assert load_trace("--trace-down", str(write(tmp_path, "1\r\n2\r\n5"))).ms == (1, 2, 5)


@pytest.mark.parametrize(("text", "message"), [
    ("", "is empty"),
    ("1\n\n2\n", "line 2: is empty"),
    ("1\n2\nabc\n", "line 3: 'abc' is not an integer"),
    ("1\n2.5\n", "line 2: '2.5' is not an integer"),
    ("-5\n", "line 1: '-5' is negative"),
    ("5\n7\n6\n", "line 3: 6 ms is before line 2's 7 ms"),
    ("0\n0\n", "lasts 0 ms"),
    ("1\n99999999999999\n", "line 2: '99999999999999' ms is beyond one day"),
    (b"1\n\xff\xfe\n", "line 2: not text"),
])
def test_bad_files_are_one_error_naming_the_file_and_the_line(
    tmp_path: Path, text: str, message: str,
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_trace("--trace-down", str(path))
    text_of = info.value.args[0]
    assert message in text_of
    assert str(path) in text_of
    assert "--trace-down" in text_of
    assert "\n" not in text_of


def test_missing_huge_and_long_files_are_refused(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"nope\.down: no such file"):
        load_trace("--trace-down", str(tmp_path / "nope.down"))
    huge = tmp_path / "huge.down"
    with huge.open("wb") as f:  # sparse: costs no disk
        f.truncate(trace.MAX_TRACE_BYTES + 1)
    with pytest.raises(ConfigError, match=r"huge\.down: \d+ bytes, larger than the 64 MiB"):
        load_trace("--trace-down", str(huge))
    monkeypatch.setattr(trace, "MAX_TRACE_LINES", 3)
    with pytest.raises(ConfigError, match="more than 3 lines"):
        load_trace("--trace-down", str(write(tmp_path, "1\n2\n3\n4\n")))
    with pytest.raises(ConfigError, match="not a regular file"):
        load_trace("--trace-down", str(tmp_path))


def test_bundled_traces_are_found_by_name_and_look_cellular() -> None:
    down = load_trace("--trace-down", "cellular.down")
    up = load_trace("--trace-up", "cellular.up")
    assert down.period_ms == up.period_ms == 20_000
    stats = down.capacity(100)
    # A two-state Markov capacity: deep fades and good spells, not a constant rate.
    assert stats.p10 < 0.3 * stats.mean < stats.mean < 0.7 * stats.p90
    assert 6 < stats.mean < 12
    assert 2 < up.capacity().mean < 5
    # The bundled files are what the generator writes (so anyone can remake them).
    assert down.ms == tuple(generate(20.0, 12.0, 1.5, 3.0, 1.0, 0.35, 3))


def test_json_round_trip_is_exact_and_compact() -> None:
    down = load_trace("--trace-down", "cellular.down")
    doc = down.to_json()
    assert DeliveryTrace.from_json(json.loads(json.dumps(doc))) == down
    assert len(json.dumps(doc)) < 3 * len(down.ms) + 100
    with pytest.raises(ConfigError, match=r"deltas_ms\[1\] must be a non-negative integer"):
        DeliveryTrace.from_json({"name": "x", "deltas_ms": "1,-1,3"})


# -- the model on a fake clock --------------------------------------------------------


def test_one_packet_per_opportunity_in_order() -> None:
    m = traced((1,))  # one opportunity every millisecond
    assert [m.offer(PKT, 0).deliver_at_ns for _ in range(4)] == [1 * MS, 2 * MS, 3 * MS, 4 * MS]


def test_repeated_timestamps_deliver_several_packets_in_one_millisecond() -> None:
    m = traced((0, 3, 3, 3, 10))
    got = [m.offer(PKT, 1 * MS).deliver_at_ns for _ in range(5)]
    # Opportunity 0 ms is past; three at 3 ms, one at 10, then the trace repeats at 10.
    assert got == [3 * MS, 3 * MS, 3 * MS, 10 * MS, 10 * MS]
    assert m.offer(PKT, 11 * MS).deliver_at_ns == 13 * MS


def test_small_packets_share_an_opportunity_and_big_ones_straddle() -> None:
    m = traced((1,))
    # 1500 bytes per opportunity, spent as mm-link spends them: three 500-byte packets
    # leave on one, a fourth waits for the next.
    assert [m.offer(bytes(500), 0).deliver_at_ns for _ in range(4)] == [1 * MS] * 3 + [2 * MS]
    # 1000 of the next 1500-byte packet's bytes fit in the 2 ms opportunity: it ends at 3.
    assert m.offer(PKT, 0).deliver_at_ns == 3 * MS


def test_an_opportunity_nobody_waits_for_is_lost() -> None:
    m = traced((1,))
    assert m.offer(bytes(100), 0).deliver_at_ns == 1 * MS
    # The 1 ms opportunity had 1400 bytes left, but this packet arrives after it.
    assert m.offer(bytes(100), 1 * MS + 1).deliver_at_ns == 2 * MS
    # Idle until 50 ms: opportunities 3..50 went unused and are not saved up.
    got = [m.offer(PKT, 50 * MS + 1).deliver_at_ns for _ in range(2)]
    assert got == [51 * MS, 52 * MS]


def test_the_trace_starts_when_the_link_comes_up_and_repeats() -> None:
    start = 7_000 * MS
    m = traced((2, 5), start_ns=start)  # period 5 ms: opportunities at 2, 5, 7, 10, ...
    got = [m.offer(PKT, start).deliver_at_ns - start for _ in range(5)]
    assert got == [2 * MS, 5 * MS, 7 * MS, 10 * MS, 12 * MS]


def test_queue_limit_counts_packets_waiting_for_an_opportunity() -> None:
    m = traced((10,), queue_packets=2)
    verdicts = [m.offer(PKT, 0).verdict for _ in range(4)]
    assert verdicts == [Verdict.DELIVER, Verdict.DELIVER, Verdict.QUEUE, Verdict.QUEUE]
    assert m.queued(0) == (2, 3000)
    # At 10 ms the first has left: one place frees up.
    assert m.offer(PKT, 10 * MS).deliver_at_ns == 30 * MS


def test_saturated_throughput_equals_the_traces_capacity() -> None:
    t = DeliveryTrace("gen", tuple(generate(2.0, 12.0, 1.5, 0.5, 0.2, 0.35, 5)))
    m = traced(t.ms, queue_packets=10)
    # Offer far more than the trace can carry: 4 packets per ms for 2 periods.
    delivered = []
    for ms in range(2 * t.period_ms):
        for _ in range(4):
            d = m.offer(PKT, ms * MS)
            if d.verdict is Verdict.DELIVER:
                delivered.append(d.deliver_at_ns)
    window = [d for d in delivered if 100 * MS <= d < (2 * t.period_ms - 100) * MS]
    capacity = t.opportunities_between(100, 2 * t.period_ms - 100)
    assert len(window) == capacity


def test_combines_with_delay_loss_and_drop_lists() -> None:
    rule = DropRule(Direction.DOWN, frozenset({2}))
    m = traced((1,), delay_ns=20 * MS, drops=(rule,))
    got = [m.offer(PKT, 0) for _ in range(3)]
    assert got[1].verdict is Verdict.DROPLIST
    # The dropped packet never used an opportunity.
    assert [got[0].deliver_at_ns, got[2].deliver_at_ns] == [21 * MS, 22 * MS]
    lossy = traced((1,), loss=0.5)
    verdicts = [lossy.offer(PKT, i * MS).verdict for i in range(2000)]
    assert 0.45 < verdicts.count(Verdict.LOSS) / 2000 < 0.55


def test_opportunities_between_counts_across_repetitions() -> None:
    t = DeliveryTrace("t", (0, 3, 3, 10))
    assert t.opportunities_between(0, 10) == 4
    assert t.opportunities_between(0, 20) == 8  # 0, 3, 3, 10 | 10, 13, 13, 20 excluded
    assert t.opportunities_between(3, 4) == 2
    assert t.capacity_bps_between(0, 10) == pytest.approx(4 * 1500 * 8 / 0.01)


# -- profiles, overrides, suites -----------------------------------------------------


def test_overrides_and_profiles_take_traces(tmp_path: Path) -> None:
    path = write(tmp_path, "1\n2\n")
    p = build_profile("4g", Overrides(trace_down=str(path)))
    assert p.down.trace is not None
    assert p.down.trace.ms == (1, 2)
    assert p.down.rate_bps is None  # the trace replaces the profile's rate
    assert p.down.queue_packets == 200
    assert p.down.delay_ns == 25 * MS
    assert p.up.trace is None
    assert p.up.rate_bps == 10_000_000
    assert LinkProfile.from_json(json.loads(json.dumps(p.to_json()))) == p
    rows = dict((r[0], r[1:]) for r in describe(p))
    assert rows["rate"] == ("10 Mbit/s", "trace t.down")
    assert rows["trace capacity"][1].startswith("mean 12 Mbit/s")
    cellular = get_profile("cellular")
    assert cellular.down.trace is not None
    assert cellular.down.queue_packets == 100
    plain = build_profile("cellular", Overrides(rate="5mbit"))
    assert plain.down.trace is None
    assert plain.down.rate_bps == 5_000_000
    none = build_profile("cellular", Overrides(trace_down="none"))
    assert none.down.trace is None
    assert none.down.queue_packets is None


def test_rate_and_trace_for_one_direction_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "1\n")
    with pytest.raises(ConfigError, match="--trace-down and --rate both set the down capacity"):
        build_profile("loopback", Overrides(rate="10mbit", trace_down=str(path)))
    with pytest.raises(ConfigError, match="both set the capacity of one direction"):
        DirectionConfig(rate_bps=10**6, trace=DeliveryTrace("x", (1,)))


def test_a_suite_link_names_traces_and_its_cells_carry_the_capacity(tmp_path: Path) -> None:
    path = write(tmp_path, "1\n")
    text = f"""
name = "t"
description = "d"
expected = "e"
[link]
profile = "loopback"
overrides = {{ delay = "10ms", trace_down = "{path}" }}
sweep = {{ trace_up = ["cellular.up", "{path}"] }}
[workload]
paths = ["/bytes/100"]
[[variant]]
label = "h1"
protocol = "h1"
"""
    suite_file = tmp_path / "s.toml"
    suite_file.write_text(text)
    suite = load_suite(str(suite_file))
    cells = expand(suite)
    assert [c.link.up.trace.name for c in cells if c.link.up.trace] == ["cellular.up", "t.down"]
    params = cells[0].params(suite)
    assert params["link_capacity"]["down"]["mean_mbps"] == pytest.approx(12.0)
    assert params["link"]["trace_down"] == str(path)  # the suite's words stay as written
    plain = tmp_path / "plain.toml"
    plain.write_text(text.replace(f', trace_down = "{path}"', "").replace(
        f'sweep = {{ trace_up = ["cellular.up", "{path}"] }}', ""))
    plain_suite = load_suite(str(plain))
    assert "link_capacity" not in expand(plain_suite)[0].params(plain_suite)
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(str(path), str(tmp_path / "gone.down")))
    with pytest.raises(ConfigError, match=r"gone\.down: no such file"):
        load_suite(str(bad))


def test_cli_refuses_a_bad_trace_in_one_line_before_creating_anything(tmp_path: Path) -> None:
    path = write(tmp_path, "3\n2\n")
    links = tmp_path / "links"
    result = subprocess.run(
        [sys.executable, "-m", "protolab", "netem", "up", "--trace-down", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, state.STATE_DIR_ENV: str(links)},
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert f"{path} line 2: 2 ms is before line 1's 3 ms" in " ".join(result.stderr.split())
    assert not links.exists() or not any(links.iterdir())


def test_one_queue_size_goes_to_the_directions_that_have_a_bottleneck() -> None:
    # A trace down and nothing up: "--queue 200" is the trace's queue, not an error about
    # the direction that has none; a rate both ways takes it both ways.
    traced = build_profile("loopback", Overrides(trace_down="cellular.down", queue="200"))
    assert (traced.up.queue_packets, traced.down.queue_packets) == (None, 200)
    rated = build_profile("loopback", Overrides(rate="10mbit/s", queue="50"))
    assert (rated.up.queue_packets, rated.down.queue_packets) == (50, 50)
    for refused in (Overrides(queue="200"),  # no bottleneck anywhere
                    Overrides(trace_down="cellular.down", queue="200/300")):  # asked for up
        with pytest.raises(ConfigError, match="--queue needs --rate or a trace"):
            build_profile("loopback", refused)
