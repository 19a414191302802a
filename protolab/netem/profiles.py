"""Named link profiles as data, and the free parameters that override them.

Delays are one-way, per direction (as in netem and mahimahi): `--delay 50ms` gives a
100 ms round trip. Every override takes `VALUE` for both directions or `UP/DOWN`
(up = client→server), e.g. `--rate 2mbit/10mbit`. Loss is per direction too: 2% on
each way loses about 4% of request/response pairs.

The figures are typical values, chosen to be recognisable rather than to model one
network: a 4G profile's 50 ms RTT and 30 Mbit/s down are commonly measured medians,
satellite is a geostationary hop (about 600 ms RTT), 3G is in the range that
browser throttling presets use. How each typed value is read is `option_values`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from protolab.errors import ConfigError
from protolab.netem.config import Direction, DirectionConfig, Distribution, LinkProfile
from protolab.netem.option_values import (
    parse_burst,
    parse_correlation,
    parse_distribution,
    parse_drop,
    parse_duration_ns,
    parse_ip,
    parse_loss,
    parse_queue,
    parse_rate_bps,
    parse_trace,
    split_updown,
)
from protolab.netem.trace import DeliveryTrace, load_trace
from protolab.netem.validation import BOUNDS

# The value parsers moved to `option_values`; re-exported for callers that import them
# from here.
__all__ = [
    "DEFAULT_QUEUE_PACKETS", "PROFILES", "Overrides", "build_profile", "describe",
    "get_profile", "parse_burst", "parse_correlation", "parse_distribution", "parse_drop",
    "parse_duration_ns", "parse_ip", "parse_loss", "parse_queue", "parse_rate_bps",
    "parse_trace", "split_updown",
]

# A rate without a queue limit gets this many packets of buffer (about a typical
# txqueuelen/10): enough for TCP to fill the pipe at lab rates without hiding RTT.
DEFAULT_QUEUE_PACKETS = 100

_MS = 1_000_000
_MBIT = 1_000_000


def _both(**fields: Any) -> tuple[DirectionConfig, DirectionConfig]:
    return DirectionConfig(**fields), DirectionConfig(**fields)


def _bundled_trace(name: str) -> DeliveryTrace:
    return load_trace("bundled trace", name)


def _profile(
    name: str,
    description: str,
    up: DirectionConfig,
    down: DirectionConfig,
) -> LinkProfile:
    return LinkProfile(name=name, up=up, down=down, description=description)


PROFILES: dict[str, LinkProfile] = {
    p.name: p
    for p in (
        _profile("loopback", "no impairment: only the forwarder's own cost", *_both()),
        _profile(
            "lan",
            "wired LAN: 1 ms RTT, 100 Mbit/s",
            *_both(delay_ns=_MS // 2, rate_bps=100 * _MBIT, queue_packets=100),
        ),
        _profile(
            "wifi",
            "home Wi-Fi: 10 ms RTT, ±3 ms jitter, 20 up / 50 down Mbit/s",
            DirectionConfig(delay_ns=5 * _MS, jitter_ns=3 * _MS, rate_bps=20 * _MBIT,
                            queue_packets=100),
            DirectionConfig(delay_ns=5 * _MS, jitter_ns=3 * _MS, rate_bps=50 * _MBIT,
                            queue_packets=100),
        ),
        _profile(
            "4g",
            "LTE: 50 ms RTT, ±5 ms jitter, 10 up / 30 down Mbit/s",
            DirectionConfig(delay_ns=25 * _MS, jitter_ns=5 * _MS, rate_bps=10 * _MBIT,
                            queue_packets=200),
            DirectionConfig(delay_ns=25 * _MS, jitter_ns=5 * _MS, rate_bps=30 * _MBIT,
                            queue_packets=200),
        ),
        _profile(
            "3g",
            "3G: 200 ms RTT, ±10 ms jitter, 0.75 up / 1.6 down Mbit/s",
            DirectionConfig(delay_ns=100 * _MS, jitter_ns=10 * _MS, rate_bps=750_000,
                            queue_packets=50),
            DirectionConfig(delay_ns=100 * _MS, jitter_ns=10 * _MS, rate_bps=1_600_000,
                            queue_packets=50),
        ),
        _profile(
            "satellite",
            "geostationary satellite: 600 ms RTT, 2 up / 10 down Mbit/s",
            DirectionConfig(delay_ns=300 * _MS, rate_bps=2 * _MBIT, queue_packets=200),
            DirectionConfig(delay_ns=300 * _MS, rate_bps=10 * _MBIT, queue_packets=500),
        ),
        _profile(
            "lossy",
            "50 ms RTT, 10 Mbit/s, 2% random loss each way",
            *_both(delay_ns=25 * _MS, rate_bps=10 * _MBIT, queue_packets=100, loss=0.02),
        ),
        _profile(
            "bursty",
            "50 ms RTT, 10 Mbit/s, 2% loss each way in bursts of 4 packets on average",
            *_both(delay_ns=25 * _MS, rate_bps=10 * _MBIT, queue_packets=100, loss=0.02,
                   burst=4.0),
        ),
        _profile(
            "cellular",
            "trace-driven cellular-like link: 40 ms RTT, capacity from the bundled traces "
            "cellular.up/.down (two-state Markov, ~3 up / ~9 down Mbit/s, deep fades)",
            DirectionConfig(delay_ns=20 * _MS, trace=_bundled_trace("cellular.up"),
                            queue_packets=100),
            DirectionConfig(delay_ns=20 * _MS, trace=_bundled_trace("cellular.down"),
                            queue_packets=100),
        ),
    )
}


@dataclass(frozen=True)
class Overrides:
    """Free parameters as a user typed them (CLI strings); None keeps the profile's value.

    Suite files build these too, so the types are checked here and every value is parsed
    and range-checked by `build_profile`, the one edge both paths share."""

    delay: str | None = None
    jitter: str | None = None
    loss: str | None = None
    burst: str | None = None
    rate: str | None = None
    queue: str | None = None
    drop: tuple[str, ...] = ()
    reorder: bool | None = None
    seed: int | None = None
    distribution: str | None = None  # uniform, normal, pareto, paretonormal (or UP/DOWN)
    correlation: str | None = None  # e.g. 25%
    trace_up: str | None = None  # a mahimahi trace file (or a bundled trace's name)
    trace_down: str | None = None
    ip: str | None = None  # "4" or "6": the address family of the lab's traffic

    def __post_init__(self) -> None:
        for name in ("delay", "jitter", "loss", "burst", "rate", "queue", "distribution",
                     "correlation", "trace_up", "trace_down", "ip"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"--{name} must be given as text (e.g. '50ms'), "
                                  f"got {type(value).__name__} {value!r}")
        if not isinstance(self.drop, tuple) or not all(isinstance(d, str) for d in self.drop):
            raise ConfigError(f"--drop must be a tuple of rules like 'down:12,13', "
                              f"got {self.drop!r}")
        if self.reorder is not None and not isinstance(self.reorder, bool):
            raise ConfigError(f"--reorder must be true or false, got {self.reorder!r}")
        if self.seed is not None:
            BOUNDS["seed"].check(self.seed)


def get_profile(name: str) -> LinkProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(
            f"unknown link profile {name!r}",
            hint=f"choose one of {', '.join(PROFILES)}",
        ) from None


def _bottleneck(fields: dict[str, Any], base: DirectionConfig) -> bool:
    """Whether a direction, with these overrides over `base`, has a rate or a trace."""
    return (fields.get("rate_bps", base.rate_bps) is not None
            or fields.get("trace", base.trace) is not None)


def build_profile(name: str, overrides: Overrides | None = None) -> LinkProfile:
    """A named profile with overrides applied; raises ConfigError before anything exists."""
    base = get_profile(name)
    o = overrides or Overrides()
    dirs = {Direction.UP: base.up, Direction.DOWN: base.down}
    fields: dict[Direction, dict[str, Any]] = {Direction.UP: {}, Direction.DOWN: {}}

    def put(option: str, raw: str | None, parse: Any, field: str) -> None:
        if raw is None:
            return
        up, down = split_updown(option, raw)
        fields[Direction.UP][field] = parse(option, up)
        fields[Direction.DOWN][field] = parse(option, down)

    put("--delay", o.delay, parse_duration_ns, "delay_ns")
    put("--jitter", o.jitter, parse_duration_ns, "jitter_ns")
    put("--loss", o.loss, parse_loss, "loss")
    put("--burst", o.burst, parse_burst, "burst")
    put("--rate", o.rate, parse_rate_bps, "rate_bps")
    put("--distribution", o.distribution, parse_distribution, "distribution")
    put("--correlation", o.correlation, parse_correlation, "correlation")
    for d, raw in ((Direction.UP, o.trace_up), (Direction.DOWN, o.trace_down)):
        if raw is None:
            continue
        option = f"--trace-{d.value}"
        if "rate_bps" in fields[d] and fields[d]["rate_bps"] is not None:
            raise ConfigError(f"{option} and --rate both set the {d.value} capacity",
                              hint="use one of them")
        trace = parse_trace(option, raw)
        fields[d]["trace"] = trace
        if trace is not None:
            fields[d]["rate_bps"] = None  # the trace replaces the profile's constant rate
    if o.queue is not None:
        up, down = split_updown("--queue", o.queue)
        both = up == down and "/" not in o.queue
        for d, raw in ((Direction.UP, up), (Direction.DOWN, down)):
            packets, nbytes = parse_queue(raw)
            if both and not _bottleneck(fields[d], dirs[d]) and any(
                    _bottleneck(fields[other], dirs[other]) for other in Direction):
                continue  # one size for both: the queue of the direction that has one
            fields[d]["queue_packets"] = packets
            fields[d]["queue_bytes"] = nbytes
    if o.reorder is not None:
        for d in Direction:
            fields[d]["reorder"] = o.reorder
    if o.drop:
        rules = [parse_drop(text) for text in o.drop]
        for d in Direction:
            fields[d]["drops"] = tuple(r for r in rules if r.direction is d)
    built: dict[Direction, DirectionConfig] = {}
    for d in Direction:
        f = fields[d]
        if f.get("rate_bps") is not None and "trace" not in f:
            f["trace"] = None  # a constant rate replaces the profile's trace
        if ("rate_bps" in f or "trace" in f) and "queue_packets" not in f:
            if not _bottleneck(f, dirs[d]):
                # No bottleneck left, so no queue either.
                f["queue_packets"] = f["queue_bytes"] = None
            elif dirs[d].queue_packets is None and dirs[d].queue_bytes is None:
                f["queue_packets"] = DEFAULT_QUEUE_PACKETS
        built[d] = replace(dirs[d], **f)
    seed = base.seed if o.seed is None else o.seed
    changed = o != Overrides()
    family = base.ip if o.ip is None else parse_ip("--ip", o.ip)
    return replace(
        base,
        up=built[Direction.UP],
        down=built[Direction.DOWN],
        seed=seed,
        ip=family,
        name=base.name + ("+custom" if changed else ""),
    )


def describe(profile: LinkProfile) -> list[tuple[str, str, str]]:
    """(parameter, up, down) rows for printing a profile."""

    def fmt_rate(c: DirectionConfig) -> str:
        if c.trace is not None:
            return f"trace {c.trace.name}"
        return "unlimited" if c.rate_bps is None else f"{c.rate_bps / 1e6:g} Mbit/s"

    def fmt_jitter(c: DirectionConfig) -> str:
        if not c.jitter_ns:
            return "±0 ms"
        shape = "" if c.distribution is Distribution.UNIFORM else f" {c.distribution.value}"
        corr = f", {c.correlation * 100:g}% correlated" if c.correlation else ""
        spread = "±" if c.distribution is Distribution.UNIFORM else "sigma "
        return f"{spread}{c.jitter_ns / 1e6:g} ms{shape}{corr}"

    def fmt_queue(c: DirectionConfig) -> str:
        if c.rate_bps is None and c.trace is None:
            return "-"
        parts = []
        if c.queue_packets is not None:
            parts.append(f"{c.queue_packets} packets")
        if c.queue_bytes is not None:
            parts.append(f"{c.queue_bytes} bytes")
        return " / ".join(parts) or "unbounded"

    def fmt_loss(c: DirectionConfig) -> str:
        if not c.loss:
            return "0%"
        kind = f"bursts of {c.burst:g}" if c.burst else "random"
        return f"{c.loss * 100:g}% ({kind})"

    rows = []
    u, d = profile.up, profile.down
    rows.append(("delay (one way)", f"{u.delay_ns / 1e6:g} ms", f"{d.delay_ns / 1e6:g} ms"))
    rows.append(("jitter", fmt_jitter(u), fmt_jitter(d)))
    rows.append(("reordering", str(u.reorder), str(d.reorder)))
    rows.append(("loss", fmt_loss(u), fmt_loss(d)))
    rows.append(("rate", fmt_rate(u), fmt_rate(d)))
    if u.trace is not None or d.trace is not None:
        up_cap, down_cap = (c.trace.capacity().describe() if c.trace is not None else "-"
                            for c in (u, d))
        rows.append(("trace capacity", up_cap, down_cap))
    rows.append(("queue", fmt_queue(u), fmt_queue(d)))
    if profile.ip == 6:
        rows.append(("address family", "IPv6 (IPv4 too)", "IPv6 (IPv4 too)"))
    rows.append((
        "drop list",
        " ".join(r.describe() for r in u.drops) or "-",
        " ".join(r.describe() for r in d.drops) or "-",
    ))
    return rows
