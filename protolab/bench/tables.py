"""Checks of the tables a user writes (suite files, claims): unknown keys, types, ranges.

Every mistake is one `ConfigError` naming where it is, the key, the value and what would
be valid, so a suite file is validated once, at the edge, before anything runs.
"""

from __future__ import annotations

import math
import re
from typing import Any

from protolab.errors import ConfigError

MAX_REPETITIONS = 1000  # a suite's repetitions (and bench --repeat) at the most


def check_keys(table: dict[str, Any], where: str, allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}", hint=f"allowed: {sorted(allowed)}")


def check_value(
    table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any,
    *, low: float | None = None, high: float | None = None,
) -> Any:
    value: Any = table.get(key, default)
    if isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"{where}: {key} must be a number, got {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(f"{where}: {key} has the wrong type ({type(value).__name__}: {value!r})")
    number: float | None = value if isinstance(value, int | float) else None
    if isinstance(number, float) and not math.isfinite(number):
        raise ConfigError(f"{where}: {key} must be a finite number, got {value!r}"
                          + range_hint(low, high))
    if number is not None and low is not None and number < low:
        raise ConfigError(f"{where}: {key} = {value} is below the minimum {low}"
                          + range_hint(low, high))
    if number is not None and high is not None and number > high:
        raise ConfigError(f"{where}: {key} = {value} is above the maximum {high}"
                          + range_hint(low, high))
    return value


def range_hint(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f" (allowed: {_bound(low)} to {_bound(high)})"
    if low is not None:
        return f" (allowed: at least {_bound(low)})"
    return f" (allowed: at most {_bound(high)})" if high is not None else ""


def _bound(value: float) -> str:
    """A range's end as written: integers whole (2**63 - 1, not 9.22337e+18)."""
    return str(value) if isinstance(value, int) else f"{value:g}"


_HEADER_NAME = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]+$")  # an RFC 9110 token, lower case
_PROTOCOL_FIELDS = frozenset({"host", "connection", "content-length", "transfer-encoding",
                              "te", "upgrade", "keep-alive"})


def check_headers(table: Any, where: str) -> tuple[tuple[str, str], ...]:
    """Request headers every protocol can carry: lower-case token names, visible-ASCII
    values, none that the protocol sets itself, 8 KiB in all at most."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table of name = \"value\"")
    out = []
    for name, value in table.items():
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {name} must be a string")
        if not _HEADER_NAME.match(name):
            raise ConfigError(f"{where}: {name!r} is not a lower-case header name")
        if name in _PROTOCOL_FIELDS:
            raise ConfigError(f"{where}: {name} is set by the protocol, not the suite")
        if not all(32 <= ord(c) < 127 for c in value):
            raise ConfigError(f"{where}: {name}'s value must be visible ASCII")
        out.append((name, value))
    if sum(len(n) + len(v) for n, v in out) > 8192:
        raise ConfigError(f"{where}: at most 8 KiB of headers")
    return tuple(out)
