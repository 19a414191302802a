"""Named link profiles as data, and the free parameters that override them.

Delays are one-way, per direction (as in netem and mahimahi): `--delay 50ms` gives a
100 ms round trip. Every override takes `VALUE` for both directions or `UP/DOWN`
(up = client→server), e.g. `--rate 2mbit/10mbit`. Loss is per direction too: 2% on
each way loses about 4% of request/response pairs.

The figures are typical values, chosen to be recognisable rather than to model one
network: a 4G profile's 50 ms RTT and 30 Mbit/s down are commonly measured medians,
satellite is a geostationary hop (about 600 ms RTT), 3G is in the range that
browser throttling presets use.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

from protolab.errors import ConfigError
from protolab.netem.config import (
    BOUNDS,
    MAX_DROP_PACKETS,
    Bound,
    Direction,
    DirectionConfig,
    Distribution,
    DropRule,
    LinkProfile,
)
from protolab.netem.trace import DeliveryTrace, load_trace

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
        for d, raw in ((Direction.UP, up), (Direction.DOWN, down)):
            packets, nbytes = parse_queue(raw)
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
            bottleneck = f.get("rate_bps", dirs[d].rate_bps) is not None or f.get(
                "trace", dirs[d].trace) is not None
            if not bottleneck:
                # No bottleneck left, so no queue either.
                f["queue_packets"] = f["queue_bytes"] = None
            elif dirs[d].queue_packets is None and dirs[d].queue_bytes is None:
                f["queue_packets"] = DEFAULT_QUEUE_PACKETS
        built[d] = replace(dirs[d], **f)
    seed = base.seed if o.seed is None else o.seed
    changed = o != Overrides()
    family = base.ip
    if o.ip is not None:
        if o.ip.strip() not in ("4", "6"):
            raise ConfigError(f"--ip {_shown(o.ip)} is not an address family",
                              hint="use 4 (10.77.X.0/24) or 6 (fd00:77:0:X::/64)")
        family = int(o.ip.strip())
    return replace(
        base,
        up=built[Direction.UP],
        down=built[Direction.DOWN],
        seed=seed,
        ip=family,
        name=base.name + ("+custom" if changed else ""),
    )


def split_updown(option: str, raw: str) -> tuple[str, str]:
    # "10mbit/s" and "1.5Mbit/s" end in a per-second slash that is not the up/down separator.
    text = re.sub(r"(?i)(bit|b|bps)/s\b", r"\1", raw.strip())
    parts = text.split("/")
    if len(parts) == 1:
        return parts[0], parts[0]
    if len(parts) == 2 and all(p.strip() for p in parts):
        return parts[0].strip(), parts[1].strip()
    raise ConfigError(f"{option} {_shown(raw)} is not VALUE or UP/DOWN",
                      hint=f"e.g. {option} 10/20")


# Numbers as people type them: digits with an optional fraction. No exponents, no
# "inf"/"nan", no underscores (all of which float() would take).
_NUMBER = r"(-?[0-9]*\.?[0-9]+)"
_MAX_DIGITS = 30  # longer numbers are out of every range; int() refuses >4300 digits


def _shown(raw: str) -> str:
    """`raw` for a one-line message, cut when someone pasted a novel."""
    return repr(raw if len(raw) <= 40 else raw[:37] + "...")


def _number(option: str, raw: str, text: str, bound: Bound, what: str) -> float:
    """`text` (matched by _NUMBER) as a finite float; refuses it naming the allowed range."""
    value = float(text) if len(text.lstrip("-")) <= _MAX_DIGITS else math.inf
    if not math.isfinite(value):
        raise ConfigError(f"{option} {_shown(raw)} is too large a {what}: "
                          f"allowed {bound.range()}")
    return value


def _integer(option: str, raw: str, text: str, bound: Bound) -> int:
    if len(text.lstrip("-")) > _MAX_DIGITS:
        raise ConfigError(f"{option} {_shown(raw)} is out of range: allowed {bound.range()}")
    return int(text)


_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def parse_duration_ns(option: str, raw: str) -> int:
    """'50ms', '0.5ms', '300us', '1s'; a bare number is milliseconds."""
    m = re.fullmatch(rf"\s*{_NUMBER}\s*(ns|us|µs|ms|s)?\s*", raw)
    bound = BOUNDS["delay_ns"]
    if not m:
        raise ConfigError(f"{option} {_shown(raw)} is not a duration",
                          hint=f"e.g. 50ms, 0.5ms, 1s; allowed {bound.range()}")
    value = _number(option, raw, m.group(1), bound, "duration")
    if value < 0:
        raise ConfigError(f"{option} must not be negative, got {_shown(raw)}: "
                          f"allowed {bound.range()}")
    return round(value * _DURATION_UNITS[m.group(2) or "ms"])


def _percent(option: str, raw: str, bound_name: str, example: str) -> float:
    """'2%' or '2' as a fraction within 0..1."""
    m = re.fullmatch(rf"\s*{_NUMBER}\s*%?\s*", raw)
    bound = BOUNDS[bound_name]
    if not m:
        raise ConfigError(f"{option} {_shown(raw)} is not a percentage",
                          hint=f"e.g. {example}; allowed {bound.range()}")
    pct = _number(option, raw, m.group(1), bound, "percentage")
    if not 0.0 <= pct <= 100.0:
        raise ConfigError(f"{option} must be within 0..100%, got {_shown(raw)}")
    return pct / 100.0


def parse_loss(option: str, raw: str) -> float:
    """'2%' or '2' (percent)."""
    return _percent(option, raw, "loss", "2% or 0.5%")


def parse_burst(option: str, raw: str) -> float | None:
    """Mean burst length in packets; 'none' or '0' means random (independent) loss."""
    if raw.strip().lower() in ("none", "0", "random"):
        return None
    m = re.fullmatch(rf"\s*{_NUMBER}\s*(?:p|pkt|packets)?\s*", raw)
    bound = BOUNDS["burst"]
    if not m:
        raise ConfigError(f"{option} {_shown(raw)} is not a number of packets",
                          hint=f"e.g. 4; allowed {bound.range()}, or none")
    return _number(option, raw, m.group(1), bound, "number of packets")


_RATE_UNITS = {
    "bit": 1, "kbit": 1_000, "mbit": 1_000_000, "gbit": 1_000_000_000,
    "bps": 1, "kbps": 1_000, "mbps": 1_000_000, "gbps": 1_000_000_000,
    "k": 1_000, "m": 1_000_000, "g": 1_000_000_000,
}


def parse_rate_bps(option: str, raw: str) -> int | None:
    """'10mbit', '1.5Mbit/s', '500kbit'; a bare number is Mbit/s; 'none' removes the limit."""
    if raw.strip().lower() in ("none", "unlimited"):
        return None
    m = re.fullmatch(rf"\s*{_NUMBER}\s*([a-zA-Z]+)?\s*", raw)
    unit = (m.group(2) or "mbit").lower() if m else ""
    bound = BOUNDS["rate_bps"]
    if not m or unit not in _RATE_UNITS:
        raise ConfigError(f"{option} {_shown(raw)} is not a rate",
                          hint=f"e.g. 10mbit, 500kbit, 1gbit; allowed {bound.range()}")
    value = _number(option, raw, m.group(1), bound, "rate") * _RATE_UNITS[unit]
    if value <= 0:
        raise ConfigError(f"{option} must be positive, got {_shown(raw)}",
                          hint=f"allowed {bound.range()}, or 'none' for no limit")
    return round(value)


def parse_distribution(option: str, raw: str) -> Distribution:
    """'uniform', 'normal', 'pareto' or 'paretonormal' (netem's names)."""
    word = raw.strip().lower()
    for d in Distribution:
        if word == d.value:
            return d
    raise ConfigError(f"{option} {_shown(raw)} is not a delay distribution",
                      hint=f"use one of {', '.join(d.value for d in Distribution)}")


def parse_correlation(option: str, raw: str) -> float:
    """'25%' or '25' (percent), as netem's CORRELATION."""
    fraction = _percent(option, raw, "correlation", "25%")
    if fraction == 1.0:
        raise ConfigError(f"{option} 100% would repeat the first draw for ever",
                          hint="use less than 100%")
    return fraction


def parse_trace(option: str, raw: str) -> DeliveryTrace | None:
    """A mahimahi trace file (or a bundled trace's name); 'none' removes the trace."""
    if raw.strip().lower() == "none":
        return None
    return load_trace(option, raw)


_BYTE_UNITS = {"b": 1, "kb": 1_000, "kib": 1_024, "mb": 1_000_000, "mib": 1_048_576,
               "gb": 1_000_000_000, "gib": 1 << 30}


def parse_queue(raw: str) -> tuple[int | None, int | None]:
    """'25p' or '25' packets, '64kb'/'64KiB'/'1500b' bytes; returns (packets, bytes)."""
    m = re.fullmatch(r"\s*(-?[0-9]+)\s*([a-zA-Z]+)?\s*", raw)
    unit = (m.group(2) or "p").lower() if m else ""
    if not m or (unit not in _BYTE_UNITS and unit not in ("p", "pkt", "packets")):
        raise ConfigError(f"--queue {_shown(raw)} is not a queue size", hint="e.g. 25p or 64kb")
    in_bytes = unit in _BYTE_UNITS
    bound = BOUNDS["queue_bytes" if in_bytes else "queue_packets"]
    value = _integer("--queue", raw, m.group(1), bound)
    if value < 1:
        raise ConfigError(f"--queue must hold at least 1, got {_shown(raw)}: "
                          f"allowed {bound.range()}")
    if in_bytes:
        return None, value * _BYTE_UNITS[unit]
    return value, None


_DIRECTION_NAMES = {
    "up": Direction.UP, "c2s": Direction.UP, "down": Direction.DOWN, "s2c": Direction.DOWN,
}


def parse_drop(raw: str) -> DropRule:
    """'down:12,13', 'up:1-3:udp', 'down:5:tcp/443', 'up:2:/443' (any protocol, port 443)."""
    parts = raw.strip().split(":")
    if len(parts) not in (2, 3) or parts[0].lower() not in _DIRECTION_NAMES:
        raise ConfigError(
            f"--drop {_shown(raw)} is not DIRECTION:N[,N...][:PROTO[/PORT]]",
            hint="e.g. --drop down:12,13 or --drop up:3:udp/443",
        )
    direction = _DIRECTION_NAMES[parts[0].lower()]
    bound = BOUNDS["drop_index"]
    indices: set[int] = set()
    for item in parts[1].split(","):
        m = re.fullmatch(r"\s*(-?[0-9]+)(?:\s*-\s*([0-9]+))?\s*", item)
        if not m:
            raise ConfigError(f"--drop {_shown(raw)}: {_shown(item)} is not a packet number "
                              "or range N-M")
        first = _integer("--drop", raw, m.group(1), bound)
        last = _integer("--drop", raw, m.group(2), bound) if m.group(2) else first
        if last < first:
            raise ConfigError(f"--drop {_shown(raw)}: range {_shown(item)} is empty")
        if first < 1:
            raise ConfigError(f"--drop packet numbers start at 1, got {first}: "
                              f"allowed {bound.range()}")
        bound.check(last)
        if last - first + len(indices) >= MAX_DROP_PACKETS:
            raise ConfigError(f"--drop {_shown(raw)} lists more than {MAX_DROP_PACKETS} "
                              f"packets: allowed 1..{MAX_DROP_PACKETS}", hint="use --loss")
        indices.update(range(first, last + 1))
    protocol: str | None = None
    port: int | None = None
    if len(parts) == 3:
        proto_text, _, port_text = parts[2].partition("/")
        protocol = proto_text.strip().lower() or None
        if port_text:
            pm = re.fullmatch(r"\s*([0-9]+)\s*", port_text)
            if not pm:
                raise ConfigError(f"--drop {_shown(raw)}: port {_shown(port_text)} is not a "
                                  "number: allowed 1..65535")
            port = _integer("--drop", raw, pm.group(1), BOUNDS["port"])
    return DropRule(direction=direction, indices=frozenset(indices), protocol=protocol, port=port)


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
