"""What a parsed suite is, and the cells it expands into.

A `Suite` holds its variants (protolab/bench/variant.py), a link spec, a workload and
its claims; `expand` turns it into cells, each a variant on one link point. What crosses
a process boundary (a cell, a workload) goes as JSON and is validated on the way back
in, like a suite file.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any

from protolab.bench.claims import Claim
from protolab.bench.tables import check_headers, check_keys, check_value
from protolab.bench.variant import Variant
from protolab.errors import ConfigError
from protolab.netem.config import Direction, LinkProfile
from protolab.netem.profiles import Overrides, build_profile


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
        return parse_workload(data, "workload")


def parse_workload(table: Any, where: str) -> Workload:
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
            "variant": self.variant.to_json(),
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
