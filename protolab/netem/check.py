"""`netem check`: measure a link and hold each figure against what was configured.

The judgement is deliberately loose where physics or this machine adds noise and
tight where a wrong setting would show: a median RTT off by more than a millisecond
(plus jitter), a loss rate outside its 99.9% confidence interval, or goodput far
from the bottleneck rate means the link is not what the user asked for.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from protolab.netem import measure, stalls
from protolab.netem.config import DirectionConfig, LinkProfile
from protolab.netem.counters import Lateness, late_words
from protolab.netem.link import EmulatedLink, LinkCounters

# TCP payload per 1500-byte packet with timestamps: 1500 - 20 (IP) - 32 (TCP+options).
TCP_EFFICIENCY_AT_1500 = 1448 / 1500
PROBE_SIZE = 64
UDP_IP_OVERHEAD = 28


@dataclass(frozen=True)
class CheckRow:
    metric: str
    configured: str
    measured: str
    ok: bool | None  # None: informational, not judged
    note: str = ""


@dataclass(frozen=True)
class CheckReport:
    profile: str
    rows: tuple[CheckRow, ...]
    counters: LinkCounters

    @property
    def ok(self) -> bool:
        return all(row.ok is not False for row in self.rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "ok": self.ok,
            "rows": [asdict(r) for r in self.rows],
            "counters": asdict(self.counters),
        }


def expected_rtt_ns(profile: LinkProfile, size: int = PROBE_SIZE) -> float:
    wire = size + UDP_IP_OVERHEAD
    total = float(profile.base_rtt_ns)
    for cfg in (profile.up, profile.down):
        if cfg.rate_bps:
            total += wire * 8e9 / cfg.rate_bps
    return total


def expected_round_trip_loss(profile: LinkProfile) -> float:
    return 1.0 - (1.0 - profile.up.loss) * (1.0 - profile.down.loss)


def _variance_inflation(cfg: DirectionConfig) -> float:
    # Gilbert-Elliott losses are correlated: lag-1 correlation rho = 1 - r - q inflates
    # the variance of the loss rate by (1 + rho) / (1 - rho) over independent draws.
    if cfg.burst is None or cfg.loss <= 0:
        return 1.0
    r = 1.0 / cfg.burst
    q = cfg.loss * r / (1.0 - cfg.loss)
    rho = 1.0 - r - q
    return (1.0 + rho) / (1.0 - rho)


def run_check(
    link: EmulatedLink, *, probes: int = 300, interval_s: float = 0.005,
    goodput_s: float = 3.0, stall_s: float = 1.0,
) -> CheckReport:
    """Probe the link, then (`stall_s` > 0) spin on every CPU that long to show what the
    machine itself loses (`netem/stalls.py`)."""
    profile = link.profile
    rows: list[CheckRow] = []
    before = link.counters().lateness
    echo = measure.udp_echo(link, count=probes, interval_s=interval_s,
                            wait_s=max(1.0, 3 * expected_rtt_ns(profile) / 1e9))
    probing = link.counters().lateness.since(before)
    rows += _rtt_rows(profile, echo)
    rows.append(_loss_row(profile, echo))
    warmup = max(0.5, 10 * expected_rtt_ns(profile, 1500) / 1e9)
    goodput = measure.tcp_goodput(link, seconds=warmup + goodput_s, warmup_s=warmup)
    rows.append(_goodput_row(profile, goodput))
    counters = link.counters()
    unseen = counters.up.unseen_drops + counters.down.unseen_drops
    rows.append(CheckRow(
        "drops outside the model", "0", str(unseen), None,
        "TUN tx/rx drops or write errors: the forwarder could not keep up" if unseen else "",
    ))
    rows.append(_lateness_row(probing))
    if stall_s:
        rows.append(_stall_row(stalls.measure_stalls(seconds=stall_s)))
    return CheckReport(profile=profile.name, rows=tuple(rows), counters=counters)


def _lateness_row(late: Lateness) -> CheckRow:
    """How late the link's own scheduled deliveries left while the RTT was probed (the
    goodput phase of an unlimited link can saturate the forwarder: its drops say so)."""
    if not late.deliveries:
        return CheckRow("link lateness (RTT probes)", "0", "none scheduled", None,
                        "zero delay: every packet is passed on as it is read")
    return CheckRow(
        "link lateness (RTT probes)", "0",
        f"p99 {late_words(late.percentile_us(99))}, {late.over_1ms} of {late.deliveries} "
        f"≥ 1 ms (worst {late_words(late.worst_us)})", None,
        "the forwarder held up (CPU stalls below) or behind" if late.over_1ms else "")


def _stall_row(report: stalls.StallReport) -> CheckRow:
    """The machine's own stalls: a link cannot be more punctual than its CPUs."""
    return CheckRow(
        "CPU stalls (machine)", "none",
        f"{report.per_second(100):.1f}/s over 100 us, longest {report.longest_us() / 1000:.2f} "
        f"ms, {report.together(100)} on every CPU at once", None,
        "a VM's host not running it: tails of this size are the machine's, not the link's"
        if report.count(500) else "")


def _rtt_rows(profile: LinkProfile, echo: measure.EchoResult) -> list[CheckRow]:
    expected = expected_rtt_ns(profile)
    jitter = profile.up.jitter_ns + profile.down.jitter_ns
    if not echo.rtts_ns:
        return [CheckRow("RTT median", f"{expected / 1e6:.2f} ms", "no replies", False)]
    median = echo.percentile_ns(50)
    p99 = echo.percentile_ns(99)
    # 1 ms covers endpoint wake-ups on this VM (~0.3 ms measured); jitter moves the median
    # (without reordering it can only push packets later).
    tolerance = max(1e6, 0.03 * expected) + jitter
    ok: bool | None = abs(median - expected) <= tolerance
    note = f"tolerance ±{tolerance / 1e6:.2f} ms"
    if profile.up.trace is not None or profile.down.trace is not None:
        # A probe waits for the trace's next delivery opportunity: ~0 in a good spell,
        # hundreds of ms in a fade, so the propagation delay is only a floor.
        ok, note = None, "trace-driven: plus the wait for delivery opportunities"
    rows = [
        CheckRow("RTT median", f"{expected / 1e6:.2f} ms", f"{median / 1e6:.2f} ms", ok, note),
        CheckRow("RTT p99", f"≤ {(expected + jitter) / 1e6:.2f} ms", f"{p99 / 1e6:.2f} ms", None),
    ]
    if echo.link_rtts_ns:  # kernel timestamps at both ends, the reflector's turn taken out
        rows.append(CheckRow(
            "RTT p99, the link's part", f"≤ {(expected + jitter) / 1e6:.2f} ms",
            f"{echo.percentile_ns(99, link_only=True) / 1e6:.2f} ms", None,
            "without the probe's own wake-ups (TWAMP-style)"))
    return rows


def _loss_row(profile: LinkProfile, echo: measure.EchoResult) -> CheckRow:
    expected = expected_round_trip_loss(profile)
    lost = echo.sent - echo.received
    inflation = max(_variance_inflation(profile.up), _variance_inflation(profile.down))
    n_eff = max(1, round(echo.sent / inflation))
    lo, hi = measure.wilson_interval(round(lost / inflation), n_eff)
    has_drop_lists = bool(profile.up.drops or profile.down.drops)
    ok: bool | None = None if has_drop_lists else lo <= expected <= hi
    return CheckRow(
        "round-trip loss", f"{expected * 100:.2f}%",
        f"{echo.loss * 100:.2f}% (99.9% CI {lo * 100:.2f}–{hi * 100:.2f}%, n={echo.sent})", ok,
        "drop lists also hit probes" if has_drop_lists else "",
    )


def _goodput_row(profile: LinkProfile, result: measure.GoodputResult) -> CheckRow:
    rate = profile.down.rate_bps
    measured = f"{result.bps / 1e6:.2f} Mbit/s ({result.retransmits} retransmits, cubic)"
    if profile.down.trace is not None:
        stats = profile.down.trace.capacity()
        return CheckRow("TCP goodput down", f"trace {stats.describe()}", measured, None,
                        "capacity varies; benchmarks/netem_trace.py compares it per window")
    lossless = not (profile.up.loss or profile.down.loss or profile.up.drops
                    or profile.down.drops)
    if rate is None:
        return CheckRow("TCP goodput down", "unlimited", measured, None,
                        "forwarder ceiling, not a link property")
    expected = rate * TCP_EFFICIENCY_AT_1500 * (min(profile.mtu, 1500) / 1500)
    if not lossless or math.isnan(result.bps):
        return CheckRow("TCP goodput down", f"≤ {expected / 1e6:.2f} Mbit/s", measured, None,
                        "loss configured: goodput depends on congestion control")
    ok = 0.85 * expected <= result.bps <= 1.03 * expected
    return CheckRow("TCP goodput down", f"{expected / 1e6:.2f} Mbit/s", measured, ok,
                    "85–103% of the rate less TCP/IP headers")
