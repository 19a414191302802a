"""How a link's configuration is checked: every number's allowed range (`BOUNDS`), value
types, and the shape of JSON documents.

Every refusal is one `ConfigError` line naming what the user typed (an option such as
`--delay`, or a JSON key), the value and the allowed range. `config` builds its frozen
dataclasses on these checks and `profiles` parses CLI values against the same bounds.

Every number is bounded: the forwarder waits in select(), whose timeout overflows past
~9.2e9 s, and schedules on a nanosecond clock, so a delay of 1e20 ms or a rate of 1 bit/s
would kill or freeze it; NaN compares false with everything and would slip through a
plain `<` check (a NaN burst length gave a link that never dropped).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from protolab.errors import ConfigError

T = TypeVar("T")

_MS = 1_000_000
# One way. A geostationary hop is 0.3 s; 60 s leaves room for odd experiments and keeps
# every select() timeout and deadline of the forwarder small.
MAX_DELAY_NS = 60_000 * _MS
# 1 kbit/s serialises a 1500-byte packet in 12 s; 100 Gbit/s is far above what the
# forwarder moves (~1.5 Gbit/s), so any faster "limit" is a typo.
MIN_RATE_BPS = 1_000
MAX_RATE_BPS = 100_000_000_000
MAX_BURST = 1_000_000.0  # mean loss-burst length, packets
MAX_QUEUE_PACKETS = 1_000_000
MAX_QUEUE_BYTES = 1 << 30
MAX_DROP_INDEX = 1_000_000_000  # the Nth packet of a rule
MAX_DROP_PACKETS = 1_000_000  # packet numbers in one rule (use --loss for more)
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class Bound:
    """The allowed range of one number, and how to show it as the user typed it."""

    option: str  # what a user typed to set it, e.g. "--delay"
    low: int | float
    high: int | float
    integer: bool = False
    unit: str = ""  # after shown values, e.g. " ms"
    scale: int | float = 1  # shown value = stored value / scale

    def range(self, *, stored: bool = False) -> str:
        scale, unit = (1, "") if stored else (self.scale, self.unit)
        return f"{_shown(self.low, scale)}..{_shown(self.high, scale)}{unit}"

    def check(self, value: Any, name: str | None = None) -> None:
        """Raise ConfigError (one line: option, value, allowed range) unless `value` fits.

        With `name` (a JSON key) values are shown as stored, not in the option's unit."""
        label = name or self.option
        scale, unit = (1, "") if name else (self.scale, self.unit)
        allowed = self.range(stored=name is not None)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or (self.integer and not isinstance(value, int)):
            kind = "an integer" if self.integer else "a number"
            raise ConfigError(f"{label} must be {kind} within {allowed}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{label} {value}{unit} is not a finite number: allowed {allowed}")
        if not self.low <= value <= self.high:
            raise ConfigError(
                f"{label} {_shown(value, scale)}{unit} is out of range: allowed {allowed}")


def _shown(value: int | float, scale: int | float) -> str:
    if isinstance(value, int) and value.bit_length() > 1000:
        return f"(a {value.bit_length()}-bit number)"  # beyond float, and str() may refuse
    if scale == 1 and isinstance(value, int) and value.bit_length() <= 64:
        return str(value)  # beyond that a value came from a float: %g says it as typed
    shown = value / scale
    return str(int(shown)) if shown.is_integer() and abs(shown) < 1e15 else f"{shown:g}"


BOUNDS: dict[str, Bound] = {
    "delay_ns": Bound("--delay", 0, MAX_DELAY_NS, integer=True, unit=" ms", scale=_MS),
    "jitter_ns": Bound("--jitter", 0, MAX_DELAY_NS, integer=True, unit=" ms", scale=_MS),
    "loss": Bound("--loss", 0.0, 1.0, unit="%", scale=0.01),
    "burst": Bound("--burst", 1.0, MAX_BURST, unit=" packets"),
    "rate_bps": Bound("--rate", MIN_RATE_BPS, MAX_RATE_BPS, integer=True, unit=" bit/s"),
    "queue_packets": Bound("--queue", 1, MAX_QUEUE_PACKETS, integer=True, unit=" packets"),
    "queue_bytes": Bound("--queue", 1, MAX_QUEUE_BYTES, integer=True, unit=" bytes"),
    "drop_index": Bound("--drop packet number", 1, MAX_DROP_INDEX, integer=True),
    "port": Bound("--drop port", 1, 65535, integer=True),
    "seed": Bound("--seed", 0, MAX_SEED, integer=True),
    "correlation": Bound("--correlation", 0.0, 1.0, unit="%", scale=0.01),
    "mtu": Bound("--mtu", 576, 65535, integer=True, unit=" bytes"),
}


def check_type(name: str, value: Any, kind: type | tuple[type, ...], what: str) -> None:
    """Raise ConfigError unless `value` is a `kind` (a bool is not an int here)."""
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"{name} must be {what}, got {value!r}")


def check_document(data: Any, where: str, keys: set[str],
                   optional: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    """`data` as a JSON object holding exactly `keys` (those in `optional` may be absent);
    a missing or unknown key is a ConfigError naming it."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a JSON object, got {type(data).__name__}")
    missing = sorted(keys - set(data) - optional)
    unknown = sorted(str(k) for k in set(data) - keys)
    if missing:
        raise ConfigError(f"{where} lacks the key(s) {', '.join(missing)}")
    if unknown:
        raise ConfigError(f"{where} has unknown key(s) {', '.join(unknown)}",
                          hint=f"known: {', '.join(sorted(keys))}")
    return data


def prefixed(where: str, build: Callable[[], T]) -> T:
    """Run `build()`; a cross-field ConfigError (e.g. jitter > delay) says where it was."""
    try:
        return build()
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.args[0]}", hint=exc.hint) from None
