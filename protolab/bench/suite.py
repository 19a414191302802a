"""Benchmark suites declared in TOML, validated before anything runs, expanded into cells.

A suite names its protocol variants (each a protocol plus its settings), a link
(a netem profile, overrides, and sweeps over any override), a workload, repetitions,
warm-up and a per-cell timeout. Every mistake in a file is a `ConfigError` naming the
key and what would be valid — never a traceback. This module reads files (bundled or by
path, `[short]` tables, traces beside the file); what they parse into is bench/cells.py's
(Suite, Cell, Workload, LinkSpec) and bench/variant.py's (Variant), re-exported here.

    name = "handshake"
    description = "..."
    expected = "..."          # the published result shape this suite is held against
    repetitions = 5
    warmup = 1
    timeout_s = 60
    seed = 1
    capture = false           # keep each cell repetition's pcap, key log, qlog (HOL analysis)

    [link]
    profile = "loopback"
    overrides = { rate = "10mbit" }
    sweep = { delay = ["5ms", "25ms"] }   # one link per value (cartesian over keys)
    points = [{ loss = "2%", burst = "4" }]  # and explicit links after the sweep
    # every key: delay, jitter, distribution (uniform|normal|pareto|paretonormal, as
    # netem), correlation, reorder, loss, burst, rate, queue, drop, seed, and trace_up /
    # trace_down (a mahimahi trace file, or a bundled trace: cellular.up, cellular.down),
    # ip (4 or 6: the address family the cells' traffic uses; default 4)

    [workload]
    paths = ["/bytes/100"]
    count = 1                 # requests per repetition
    concurrency = 1
    fresh_connection = true   # every request on its own new connection
    record_arrivals = false   # keep every body data arrival (waterfalls, HOL stalls)
    body_bytes = 0            # request body: POST for HTTP (/echo), the ws/gRPC message
    load = "closed"           # or "open": request i due at i / rate s, latency from then
    rate = 0                  # open load: requests per second

    [[variant]]
    label = "h2-tls13"
    protocol = "h2"
    tls_version = "1.3"
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from protolab.bench.cells import (
    Cell,
    LinkSpec,
    Suite,
    Workload,
    expand,
    link_overrides,
    parse_workload,
)
from protolab.bench.claims import Claim, parse_claim
from protolab.bench.tables import MAX_REPETITIONS, check_keys, check_value
from protolab.bench.variant import Variant, parse_variant
from protolab.errors import ConfigError
from protolab.netem.profiles import PROFILES

__all__ = ["BUNDLED", "Cell", "LinkSpec", "Suite", "Variant", "Workload", "expand",
           "link_overrides", "load_suite", "parse_suite"]

BUNDLED = ("handshake", "app-hol", "transport-hol", "one-vs-many", "bulk", "demo",
           "conn-per-request", "push", "grpc-vs-json", "headers", "reordering", "compression",
           "migration")
_OVERRIDE_KEYS = ("delay", "jitter", "loss", "burst", "rate", "queue", "drop", "reorder", "seed",
                  "distribution", "correlation", "trace_up", "trace_down", "ip")


def load_suite(name_or_path: str, *, short: bool = False) -> Suite:
    """A bundled suite by name, or a TOML file by path; with `short`, its `[short]` table
    (fewer repetitions, fewer link points: what `protolab claims` runs) overrides it."""
    path = Path(name_or_path)
    if name_or_path in BUNDLED:
        text = resources.files("protolab.bench").joinpath(f"suites/{name_or_path}.toml").read_text()
        source = f"bundled suite {name_or_path}"
    elif path.is_file():
        text, source = path.read_text(), str(path)
    else:
        raise ConfigError(
            f"no suite {name_or_path!r}",
            hint=f"bundled suites: {', '.join(BUNDLED)}; or give a path to a TOML file",
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    if name_or_path not in BUNDLED:
        _anchor_traces(data, path.parent)
    return parse_suite(data, source, short=short)


def _anchor_traces(data: dict[str, Any], folder: Path) -> None:
    """A suite file's relative trace paths name files beside the suite (as an include
    would), wherever the lab is run from; a bundled trace's name stays a name."""
    def anchor(table: Any) -> None:
        if isinstance(table, list):
            for item in table:
                anchor(item)
        elif isinstance(table, dict):
            for key, value in table.items():
                if key in ("trace_up", "trace_down"):  # one file, or a sweep's list
                    table[key] = ([beside(v) for v in value] if isinstance(value, list)
                                  else beside(value))
                else:
                    anchor(value)

    def beside(value: Any) -> Any:
        if not isinstance(value, str) or Path(value).is_absolute():
            return value
        return str(folder / value) if (folder / value).is_file() else value
    anchor(data.get("link"))
    anchor(data.get("short", {}).get("link") if isinstance(data.get("short"), dict) else None)


_SHORT_KEYS = {"repetitions", "warmup", "timeout_s", "link", "workload"}


def _shortened(data: dict[str, Any], source: str) -> dict[str, Any]:
    """`data` with its `[short]` overrides: top-level keys replaced, and inside `link` and
    `workload` each key replaced (a short sweep replaces the whole sweep)."""
    short = data.get("short", {})
    if not isinstance(short, dict):
        raise ConfigError(f"{source}: short must be a table")
    check_keys(short, f"{source}: [short]", _SHORT_KEYS)
    merged = dict(data)
    for key, value in short.items():
        if key in ("link", "workload"):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: short.{key} must be a table")
            base = merged.get(key, {})
            merged[key] = {**(base if isinstance(base, dict) else {}), **value}
        else:
            merged[key] = value
    return merged


def parse_suite(data: dict[str, Any], source: str = "suite", *, short: bool = False) -> Suite:
    check_keys(data, source, {"name", "description", "expected", "repetitions", "warmup",
                         "timeout_s", "seed", "link", "workload", "variant", "claim", "short",
                         "capture"})
    if short:
        data = _shortened(data, source)
    elif "short" in data:
        _shortened(data, source)  # a mistake in [short] is reported whatever is run
    variants = data.get("variant")
    if not isinstance(variants, list) or not variants:
        raise ConfigError(f"{source}: needs at least one [[variant]] table")
    parsed = tuple(parse_variant(v, f"{source}: variant {i + 1}") for i, v in enumerate(variants))
    labels = [v.label for v in parsed]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{source}: variant labels must be unique, got {labels}")
    suite = Suite(
        name=check_value(data, "name", str, source, "unnamed"),
        description=check_value(data, "description", str, source, ""),
        expected=check_value(data, "expected", str, source, ""),
        variants=parsed,
        link=_link(data.get("link", {}), f"{source}: [link]"),
        workload=parse_workload(data.get("workload", {}), f"{source}: [workload]"),
        repetitions=check_value(data, "repetitions", int, source, 5, low=1,
                                high=MAX_REPETITIONS),
        warmup=check_value(data, "warmup", int, source, 1, low=0, high=100),
        timeout_s=float(check_value(data, "timeout_s", (int, float), source, 60.0, low=0.1,
                                    high=3600)),
        seed=check_value(data, "seed", int, source, 1, low=0, high=2**63 - 1),
        claims=_claims(data.get("claim", []), source, labels),
        capture=check_value(data, "capture", bool, source, False),
    )
    # Build every link now: an impossible parameter fails before anything is created.
    expand(suite)
    return suite


def _claims(tables: Any, source: str, labels: list[str]) -> tuple[Claim, ...]:
    if not isinstance(tables, list):
        raise ConfigError(f"{source}: claim must be [[claim]] tables")
    claims = tuple(parse_claim(t, f"{source}: claim {i + 1}", labels)
                   for i, t in enumerate(tables))
    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{source}: claim ids must be unique, got {ids}")
    return claims


def _link(table: Any, where: str) -> LinkSpec:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    check_keys(table, where, {"profile", "overrides", "sweep", "points"})
    profile = check_value(table, "profile", str, where, "loopback")
    if profile not in PROFILES:
        raise ConfigError(f"{where}: unknown profile {profile!r}",
                          hint=f"choose one of {', '.join(PROFILES)}")
    overrides = check_value(table, "overrides", dict, where, {})
    sweep = check_value(table, "sweep", dict, where, {})
    check_keys(overrides, f"{where} overrides", set(_OVERRIDE_KEYS))
    check_keys(sweep, f"{where} sweep", set(_OVERRIDE_KEYS))
    for key, values in sweep.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: sweep.{key} must be a non-empty list")
    points = check_value(table, "points", list, where, [])
    for i, point in enumerate(points):
        if not isinstance(point, dict):
            raise ConfigError(f"{where}: points[{i}] must be a table of overrides")
        check_keys(point, f"{where} points[{i}]", set(_OVERRIDE_KEYS))
    return LinkSpec(
        profile=profile,
        overrides={k: str(v) for k, v in overrides.items()},
        sweep={k: tuple(str(v) for v in values) for k, values in sweep.items()},
        extra=tuple({k: str(v) for k, v in point.items()} for point in points),
    )
