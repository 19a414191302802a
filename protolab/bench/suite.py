"""Benchmark suites declared in TOML, validated before anything runs, expanded into cells.

A suite names its protocol variants (each a protocol plus its settings), a link
(a netem profile, overrides, and sweeps over any override), a workload, repetitions,
warm-up and a per-cell timeout. Every mistake in a file is a `ConfigError` naming the
key and what would be valid — never a traceback.

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

import dataclasses
import itertools
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from protolab import registry
from protolab.bench.claims import Claim, parse_claim
from protolab.bench.tables import check_headers, check_keys, check_value
from protolab.errors import ConfigError
from protolab.netem.config import Direction, LinkProfile
from protolab.netem.profiles import PROFILES, Overrides, build_profile
from protolab.qpack import MAX_TABLE
from protolab.registry import KNOB_DEFAULTS, SERVER_KNOBS, ProtocolSpec

BUNDLED = ("handshake", "app-hol", "transport-hol", "one-vs-many", "bulk", "demo",
           "conn-per-request", "push", "grpc-vs-json", "headers", "reordering", "compression",
           "migration")
_OVERRIDE_KEYS = ("delay", "jitter", "loss", "burst", "rate", "queue", "drop", "reorder", "seed",
                  "distribution", "correlation", "trace_up", "trace_down", "ip")


@dataclass(frozen=True)
class Variant:
    """One protocol with its settings (knobs, named as in `registry.KNOB_DEFAULTS`); which
    of them its client and server take is the registry's business."""

    label: str
    protocol: str
    tls: bool = True
    tls_version: str = "1.3"
    cc: str = "cubic"  # TCP congestion control, or aioquic's for h3
    scheduling: str = "round-robin"  # server DATA scheduling (h2, h3)
    connections: int = 6  # h1 pool
    pipeline: int = 1  # h1 pipelining depth
    keepalive: bool = True
    resume: bool = False  # h1/h2: resume the TLS session of a priming connection
    zero_rtt: bool = False  # h3: resume with a ticket and send the request as 0-RTT
    window: int = 4 << 20  # stream flow-control window (h2 and h3, both sides)
    connection_window: int = 16 << 20
    data_frame: int = 16_384  # largest HTTP/2 DATA frame the server sends
    accept_encoding: str = ""  # h1/h2/h3 clients: the Accept-Encoding they send
    gzip_level: int = 6  # server: gzip level of coded responses
    brotli_quality: int = 5  # server: brotli quality of coded responses
    grpc_compression: str = "identity"  # gRPC both sides: "gzip" message compression
    migrate_after_bytes: int = 0  # h1/h2/h3: the client moves once a body passes this
    migrate_resume: bool = True  # h1/h2: the retry after a move asks only for the rest
    migrate_to: str = "port"  # h3: the move goes to a new local "port" or "address"
    qpack_table: int = 4096  # h3, both sides: QPACK dynamic table capacity (0: none)

    @property
    def spec(self) -> ProtocolSpec:
        return registry.get(self.protocol)

    def knobs(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in KNOB_DEFAULTS}

    def server_key(self) -> tuple[Any, ...]:
        """Variants with equal keys can share one server process."""
        return (*(getattr(self, k) for k in SERVER_KNOBS), self.spec.server_group)

    def client_options(self) -> dict[str, Any]:
        return self.spec.client_options(self.knobs())

    @property
    def primes(self) -> bool:
        """Needs a priming connection so the measured one can resume."""
        return self.spec.primes(self.knobs())

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Variant:
        return _variant(data, "variant")


@dataclass(frozen=True)
class Workload:
    paths: tuple[str, ...] = ("/bytes/100",)
    count: int = 1
    concurrency: int = 1  # closed load: requests in flight at once
    fresh_connection: bool = False
    record_arrivals: bool = False
    body_bytes: int = 0  # request body (POST for HTTP; the echoed message for ws, gRPC's body)
    # "closed": the next request waits for a free slot; "open": request i is due at
    # i / rate seconds whatever happened before, and latency counts from when it was due.
    load: str = "closed"
    rate: float = 0.0  # open load: requests per second
    headers: tuple[tuple[str, str], ...] = ()  # extra request headers (the headers suite)

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "paths": list(self.paths),
                "headers": dict(self.headers)}

    @classmethod
    def from_json(cls, data: Any) -> Workload:
        return _workload(data, "workload")


@dataclass(frozen=True)
class LinkSpec:
    profile: str = "loopback"
    overrides: dict[str, str] = field(default_factory=dict)
    sweep: dict[str, tuple[str, ...]] = field(default_factory=dict)
    extra: tuple[dict[str, str], ...] = ()  # explicit points added after the sweep

    def points(self) -> list[dict[str, str]]:
        """The override sets of every link: the sweep's cartesian product, then `extra`."""
        keys = sorted(self.sweep)
        combos = itertools.product(*(self.sweep[k] for k in keys)) if keys else [()]
        swept = [{**self.overrides, **dict(zip(keys, combo, strict=True))} for combo in combos]
        if self.extra and not self.sweep:
            swept = []  # only the explicit points
        return swept + [{**self.overrides, **point} for point in self.extra]


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    expected: str
    variants: tuple[Variant, ...]
    link: LinkSpec
    workload: Workload
    repetitions: int = 5
    warmup: int = 1
    timeout_s: float = 60.0
    seed: int = 1
    claims: tuple[Claim, ...] = ()  # what the suite's sources predict, judged after a run
    capture: bool = False  # keep every cell repetition's capture (as `bench --capture`)


@dataclass(frozen=True)
class Cell:
    """One variant on one link point; repetitions of it are interleaved with other cells.

    A cell carries its link already built (`link`), so whoever runs it — this process or
    another — needs nothing else of the suite but the workload and timeout."""

    index: int
    variant: Variant
    link_point: dict[str, str]  # the suite's words for this link (shown, compared)
    link: LinkProfile  # the link those words build

    @property
    def rtt_ms(self) -> float:
        """The link's base round trip: propagation delay both ways (no jitter, no queue)."""
        return (self.link.up.delay_ns + self.link.down.delay_ns) / 1e6

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "variant": self.variant.to_json(),
                "link_point": dict(self.link_point), "link": self.link.to_json()}

    @classmethod
    def from_json(cls, data: Any) -> Cell:
        """A cell another process serialised; validated like a suite file."""
        if not isinstance(data, dict) or set(data) != {"index", "variant", "link_point",
                                                        "link"}:
            raise ConfigError("a cell is {index, variant, link_point, link}")
        index, point = data["index"], data["link_point"]
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ConfigError(f"cell index must be a non-negative integer, got {index!r}")
        if not isinstance(point, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in point.items()):
            raise ConfigError("cell link_point must be a table of strings")
        return cls(index, Variant.from_json(data["variant"]), dict(point),
                   LinkProfile.from_json(data["link"]))

    def params(self, suite: Suite) -> dict[str, Any]:
        return {
            "label": self.variant.label,
            "variant": self.variant.__dict__,
            "link_profile": suite.link.profile,
            "link": self.link_point,
            "workload": suite.workload.__dict__,
            # What a delivery trace offered (Mbit/s over 100 ms windows), stored with the
            # cell so `results show --json` has it beside the measurements.
            **({"link_capacity": capacity} if (capacity := {
                d.value: c.trace.capacity().to_json() for d in Direction
                if (c := self.link.direction(d)).trace is not None}) else {}),
        }


def expand(suite: Suite) -> list[Cell]:
    cells: list[Cell] = []
    for point in suite.link.points():
        link = build_profile(suite.link.profile, link_overrides(point, suite.seed))
        for variant in suite.variants:
            cells.append(Cell(len(cells), variant, point, link))
    return cells


def link_overrides(point: dict[str, str], seed: int) -> Overrides:
    drop = point.get("drop")
    reorder = point.get("reorder")
    return Overrides(
        delay=point.get("delay"), jitter=point.get("jitter"), loss=point.get("loss"),
        burst=point.get("burst"), rate=point.get("rate"), queue=point.get("queue"),
        drop=tuple(drop.split(";")) if drop else (),
        reorder=None if reorder is None else reorder.lower() in ("1", "true", "yes"),
        seed=_seed(point["seed"]) if "seed" in point else seed,
        distribution=point.get("distribution"), correlation=point.get("correlation"),
        trace_up=point.get("trace_up"), trace_down=point.get("trace_down"),
        ip=point.get("ip"),
    )


def _seed(text: str) -> int:
    if not text.isdigit() or len(text) > 19 or int(text) > 2**63 - 1:
        raise ConfigError(f"link seed must be an integer in 0..{2**63 - 1}, got {text!r}")
    return int(text)


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
    parsed = tuple(_variant(v, f"{source}: variant {i + 1}") for i, v in enumerate(variants))
    labels = [v.label for v in parsed]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{source}: variant labels must be unique, got {labels}")
    suite = Suite(
        name=check_value(data, "name", str, source, "unnamed"),
        description=check_value(data, "description", str, source, ""),
        expected=check_value(data, "expected", str, source, ""),
        variants=parsed,
        link=_link(data.get("link", {}), f"{source}: [link]"),
        workload=_workload(data.get("workload", {}), f"{source}: [workload]"),
        repetitions=check_value(data, "repetitions", int, source, 5, low=1, high=1000),
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


# Each knob's type and range, checked at the edge (a suite file); the protocol's own
# constraints come from the registry.
_KNOB_RANGES: dict[str, tuple[type, float | None, float | None]] = {
    "tls": (bool, None, None), "tls_version": (str, None, None), "cc": (str, None, None),
    "scheduling": (str, None, None), "connections": (int, 1, 256), "pipeline": (int, 1, 64),
    "keepalive": (bool, None, None), "resume": (bool, None, None),
    "zero_rtt": (bool, None, None), "window": (int, 65_535, 2**31 - 1),
    "connection_window": (int, 65_535, 2**31 - 1), "data_frame": (int, 1, 16_777_215),
    "accept_encoding": (str, None, None), "gzip_level": (int, 1, 9),
    "brotli_quality": (int, 0, 11), "grpc_compression": (str, None, None),
    "migrate_after_bytes": (int, 0, registry.MAX_MIGRATE_AFTER),
    "migrate_resume": (bool, None, None), "migrate_to": (str, None, None),
    "qpack_table": (int, 0, MAX_TABLE),
}


def _variant(table: Any, where: str) -> Variant:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    check_keys(table, where, {"label", "protocol", *KNOB_DEFAULTS})
    protocol = check_value(table, "protocol", str, where, "")
    if protocol not in registry.PROTOCOLS:
        raise ConfigError(f"{where}: unknown protocol {protocol!r}",
                          hint=f"choose one of {', '.join(registry.NAMES)}")
    knobs = {name: check_value(table, name, kind, where, KNOB_DEFAULTS[name], low=low, high=high)
             for name, (kind, low, high) in _KNOB_RANGES.items()}
    variant = Variant(label=check_value(table, "label", str, where, protocol), protocol=protocol,
                      **knobs)
    if variant.tls_version not in ("1.2", "1.3"):
        raise ConfigError(f"{where}: tls_version must be \"1.2\" or \"1.3\"")
    if variant.scheduling not in ("round-robin", "sequential"):
        raise ConfigError(f"{where}: scheduling must be round-robin or sequential")
    problems = variant.spec.validate(variant.knobs())
    if problems:
        raise ConfigError(f"{where}: {problems[0]}")
    return variant


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


def _workload(table: Any, where: str) -> Workload:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    check_keys(table, where, {"paths", "count", "concurrency", "fresh_connection",
                              "record_arrivals", "load", "rate", "body_bytes", "headers"})
    paths = table.get("paths", ["/bytes/100"])
    if not isinstance(paths, list) or not paths or not all(
        isinstance(p, str) and p.startswith("/") for p in paths
    ):
        raise ConfigError(f"{where}: paths must be a non-empty list of paths starting with /")
    workload = Workload(
        paths=tuple(paths),
        count=check_value(table, "count", int, where, 1, low=1, high=100_000),
        concurrency=check_value(table, "concurrency", int, where, 1, low=1, high=1000),
        fresh_connection=check_value(table, "fresh_connection", bool, where, False),
        record_arrivals=check_value(table, "record_arrivals", bool, where, False),
        body_bytes=check_value(table, "body_bytes", int, where, 0, low=0, high=16 << 20),
        load=check_value(table, "load", str, where, "closed"),
        rate=float(check_value(table, "rate", (int, float), where, 0.0, low=0, high=100_000)),
        headers=check_headers(table.get("headers", {}), f"{where} headers"),
    )
    if workload.load not in ("closed", "open"):
        raise ConfigError(f"{where}: load must be \"closed\" or \"open\"")
    if workload.load == "open" and workload.rate <= 0:
        raise ConfigError(f"{where}: an open load needs rate = requests per second (> 0)")
    if workload.load == "open" and workload.fresh_connection:
        raise ConfigError(f"{where}: fresh_connection is a closed-load workload")
    return workload
