"""One override value as a user typed it (`--delay 50ms`, `--rate 2mbit/10mbit`,
`--drop down:12,13:tcp`) → the number, rule or trace a `DirectionConfig` holds.

`profiles.build_profile` calls these for CLI options and suite keys alike. Only plain
decimal numbers are read (no exponents, `inf` or `nan`), and every value is range-checked
against `validation.BOUNDS`, so a refusal is one line naming the option, the value and
the allowed range.
"""

from __future__ import annotations

import math
import re

from protolab.errors import ConfigError
from protolab.netem.config import Direction, Distribution, DropRule
from protolab.netem.trace import DeliveryTrace, load_trace
from protolab.netem.validation import BOUNDS, MAX_DROP_PACKETS, Bound


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


def parse_ip(option: str, raw: str) -> int:
    """'4' or '6': the address family of the lab's traffic."""
    if raw.strip() not in ("4", "6"):
        raise ConfigError(f"{option} {_shown(raw)} is not an address family",
                          hint="use 4 (10.77.X.0/24) or 6 (fd00:77:0:X::/64)")
    return int(raw.strip())
