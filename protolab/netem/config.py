"""What a link is configured to do: frozen, validated data and nothing else.

A `LinkProfile` holds one `DirectionConfig` per direction: `up` is client→server,
`down` is server→client. Every field is checked when the object is built, so a
profile that exists is one the model and the forwarder can apply exactly; errors
name the option a user typed (`--delay`, `--loss`, ...) with the value and the allowed
range, so they can fix it. CLI options, suite files (both through
`profiles.build_profile`) and JSON documents (`LinkProfile.from_json`) all end here.
The checks themselves, and every number's range (`BOUNDS`), are in `validation`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from protolab.errors import ConfigError
from protolab.netem.trace import DeliveryTrace
from protolab.netem.validation import (
    BOUNDS,
    MAX_BURST,
    MAX_DELAY_NS,
    MAX_DROP_INDEX,
    MAX_DROP_PACKETS,
    MAX_QUEUE_BYTES,
    MAX_QUEUE_PACKETS,
    MAX_RATE_BPS,
    MAX_SEED,
    MIN_RATE_BPS,
    Bound,
    check_document,
    check_type,
    prefixed,
)

# The bounds and checks moved to `validation`; re-exported for callers that import them
# from here.
__all__ = [
    "BOUNDS", "MAX_BURST", "MAX_DELAY_NS", "MAX_DROP_INDEX", "MAX_DROP_PACKETS",
    "MAX_QUEUE_BYTES", "MAX_QUEUE_PACKETS", "MAX_RATE_BPS", "MAX_SEED", "MIN_RATE_BPS",
    "PORTED_PROTOCOLS", "PROTOCOL_NUMBERS", "Bound", "Direction", "DirectionConfig",
    "Distribution", "DropRule", "LinkProfile",
]


class Direction(StrEnum):
    """Which way a packet crosses the link."""

    UP = "up"  # client → server
    DOWN = "down"  # server → client


# IP protocol numbers a drop rule may filter on; ports exist only for TCP and UDP.
PROTOCOL_NUMBERS: dict[str, int] = {"tcp": 6, "udp": 17, "icmp": 1}
PORTED_PROTOCOLS = frozenset({"tcp", "udp"})


class Distribution(StrEnum):
    """Shapes of the delay's variation, as Linux netem names them (`distribution ...`)."""

    UNIFORM = "uniform"  # in [-jitter, +jitter] (netem's default)
    NORMAL = "normal"  # jitter is the standard deviation
    PARETO = "pareto"  # netem's table: a heavy right tail, jitter scales it
    PARETONORMAL = "paretonormal"  # netem's table: 1/4 normal + 3/4 pareto, same quantile


@dataclass(frozen=True)
class DropRule:
    """Drop the Nth, Mth ... packet (1-based) in one direction that matches a filter.

    Packets are counted per rule, so "drop the 3rd UDP packet to port 443" ignores the
    TCP and ICMP packets around it; that makes head-of-line experiments reproducible.
    """

    direction: Direction
    indices: frozenset[int]
    protocol: str | None = None  # "tcp", "udp", "icmp"; None counts every packet
    port: int | None = None  # matches the source or the destination port

    def __post_init__(self) -> None:
        if not isinstance(self.direction, Direction):
            raise ConfigError(f"--drop direction must be up or down, got {self.direction!r}")
        check_type("--drop packet numbers", self.indices, frozenset, "a frozenset of integers")
        if not self.indices:
            raise ConfigError("--drop lists no packet numbers", hint="e.g. --drop down:12,13")
        if len(self.indices) > MAX_DROP_PACKETS:
            raise ConfigError(
                f"--drop lists {len(self.indices)} packet numbers: allowed 1..{MAX_DROP_PACKETS}",
                hint="for that many drops use --loss",
            )
        bound = BOUNDS["drop_index"]
        for index in self.indices:
            if isinstance(index, int) and not isinstance(index, bool) and index < 1:
                raise ConfigError(
                    f"--drop packet numbers start at 1, got {index}: allowed {bound.range()}",
                    hint="packets are counted per direction from 1",
                )
            bound.check(index)
        if self.protocol is not None and self.protocol not in PROTOCOL_NUMBERS:
            raise ConfigError(
                f"--drop protocol {self.protocol!r} is unknown",
                hint=f"use one of {', '.join(sorted(PROTOCOL_NUMBERS))}",
            )
        if self.port is not None:
            if self.protocol is not None and self.protocol not in PORTED_PROTOCOLS:
                raise ConfigError(
                    f"--drop filters {self.protocol} on port {self.port}, "
                    f"but {self.protocol} packets have no ports: the rule can never match",
                    hint="drop the port or use tcp/udp",
                )
            check_type("--drop port", self.port, int, "an integer within 1..65535")
            # Port 0 never appears on the wire (it means "any" to bind()).
            if not 1 <= self.port <= 65535:
                raise ConfigError(
                    f"--drop port {self.port} can never match: allowed 1..65535",
                    hint="ports on the wire are 1..65535",
                )

    def describe(self) -> str:
        numbers = ",".join(str(i) for i in sorted(self.indices))
        what = self.protocol or "any"
        if self.port is not None:
            what += f"/{self.port}"
        return f"{self.direction.value}:{numbers}:{what}"

    def ranges(self) -> list[list[int]]:
        """The packet numbers as sorted, disjoint [first, last] runs."""
        runs: list[list[int]] = []
        for i in sorted(self.indices):
            if runs and runs[-1][1] == i - 1:
                runs[-1][1] = i
            else:
                runs.append([i, i])
        return runs

    def to_json(self) -> dict[str, Any]:
        """JSON-safe data; packet numbers as [first, last] runs, so long ranges stay small."""
        return {"direction": self.direction.value, "indices": self.ranges(),
                "protocol": self.protocol, "port": self.port}

    @classmethod
    def from_json(cls, data: Any, where: str = "drop") -> DropRule:
        """The inverse of `to_json`; a bad document is a ConfigError naming the key."""
        doc = check_document(data, where, {"direction", "indices", "protocol", "port"})
        direction = doc["direction"]
        if direction not in (d.value for d in Direction):
            raise ConfigError(f"{where}.direction must be 'up' or 'down', got {direction!r}")
        runs = doc["indices"]
        check_type(f"{where}.indices", runs, list, "a list of [first, last] packet numbers")
        indices: set[int] = set()
        bound = BOUNDS["drop_index"]
        for i, run in enumerate(runs):
            key = f"{where}.indices[{i}]"
            if not (isinstance(run, list) and len(run) == 2):
                raise ConfigError(f"{key} must be a [first, last] pair, got {run!r}")
            first, last = run
            bound.check(first, f"{key}[0]")
            bound.check(last, f"{key}[1]")
            if last < first or last - first + len(indices) >= MAX_DROP_PACKETS:
                raise ConfigError(f"{key} {run!r} is empty or makes the rule longer than "
                                  f"{MAX_DROP_PACKETS} packets")
            indices.update(range(first, last + 1))
        protocol, port = doc["protocol"], doc["port"]
        if protocol is not None:
            check_type(f"{where}.protocol", protocol, str, "null or one of icmp, tcp, udp")
        if port is not None:
            BOUNDS["port"].check(port, f"{where}.port")
        return prefixed(where, lambda: cls(Direction(direction), frozenset(indices),
                                           protocol, port))


@dataclass(frozen=True)
class DirectionConfig:
    """Impairments of one direction, applied in this order: drop list, loss, queue+rate, delay."""

    delay_ns: int = 0  # one-way propagation delay
    jitter_ns: int = 0  # uniform in [-jitter, +jitter] around the delay (netem's default shape)
    reorder: bool = False  # False: jitter never lets a later packet overtake an earlier one
    loss: float = 0.0  # mean loss probability, 0..1
    burst: float | None = None  # mean loss-burst length in packets (Gilbert-Elliott); None: random
    rate_bps: int | None = None  # bottleneck rate in bit/s; None: unlimited, no queue
    queue_packets: int | None = None  # drop-tail limit on packets waiting for the bottleneck
    queue_bytes: int | None = None  # same limit in bytes; both may be set, first hit drops
    drops: tuple[DropRule, ...] = field(default=())
    # Capacity from a mahimahi delivery trace instead of a constant rate (never both).
    trace: DeliveryTrace | None = None
    distribution: Distribution = Distribution.UNIFORM  # the jitter's shape
    correlation: float = 0.0  # 0..1: how much each jitter draw leans on the last (netem's)

    def __post_init__(self) -> None:
        for name in ("delay_ns", "jitter_ns", "loss", "correlation"):
            BOUNDS[name].check(getattr(self, name))
        for name in ("burst", "rate_bps", "queue_packets", "queue_bytes"):
            if getattr(self, name) is not None:
                BOUNDS[name].check(getattr(self, name))
        check_type("--reorder", self.reorder, bool, "true or false")
        if self.jitter_ns > self.delay_ns:
            raise ConfigError(
                f"--jitter {self.jitter_ns / 1e6:g} ms exceeds --delay {self.delay_ns / 1e6:g} ms",
                hint="a packet cannot arrive before it was sent; raise the delay or lower jitter",
            )
        if self.burst is not None:
            self._check_burst(self.burst)
        if self.trace is not None and not isinstance(self.trace, DeliveryTrace):
            raise ConfigError(f"a trace must be a DeliveryTrace, got {type(self.trace).__name__}")
        if self.trace is not None and self.rate_bps is not None:
            raise ConfigError(
                f"--rate {self.rate_bps / 1e6:g} Mbit/s and trace {self.trace.name} both set the "
                "capacity of one direction", hint="use one of them (--rate none drops the rate)")
        if not isinstance(self.distribution, Distribution):
            raise ConfigError(
                f"--distribution {self.distribution!r} is unknown",
                hint=f"use one of {', '.join(d.value for d in Distribution)}")
        if not self.jitter_ns and (self.distribution is not Distribution.UNIFORM
                                   or self.correlation):
            what = (f"--distribution {self.distribution.value}" if self.correlation == 0
                    else f"--correlation {self.correlation * 100:g}%")
            raise ConfigError(f"{what} needs --jitter: it shapes the delay's variation",
                              hint="add e.g. --jitter 5ms")
        queued = self.queue_packets is not None or self.queue_bytes is not None
        if queued and self.rate_bps is None and self.trace is None:
            raise ConfigError(
                "--queue needs --rate or a trace: without a bottleneck no queue ever forms",
                hint="add e.g. --rate 10mbit",
            )
        check_type("drop rules", self.drops, tuple, "a tuple of DropRule")
        for rule in self.drops:
            if not isinstance(rule, DropRule):
                raise ConfigError(f"drop rules must be DropRule, got {type(rule).__name__}")

    def _check_burst(self, burst: float) -> None:
        if self.loss <= 0.0:
            raise ConfigError("--burst needs --loss: it shapes how the loss is spread")
        if self.loss >= 1.0:
            raise ConfigError("--burst with 100% loss is meaningless: every packet is lost")
        # Gilbert-Elliott: p(good→bad) = loss / ((1 - loss) * burst) must be a probability.
        if self.loss / ((1.0 - self.loss) * burst) > 1.0:
            shortest = self.loss / (1.0 - self.loss)
            raise ConfigError(
                f"--loss {self.loss * 100:g}% cannot be reached with bursts of {burst:g} packets",
                hint=f"use --burst >= {shortest:.2f} or lower --loss",
            )

    @property
    def impaired(self) -> bool:
        return bool(
            self.delay_ns or self.jitter_ns or self.loss or self.rate_bps or self.drops
            or self.trace
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "delay_ns": self.delay_ns, "jitter_ns": self.jitter_ns, "reorder": self.reorder,
            "loss": self.loss, "burst": self.burst, "rate_bps": self.rate_bps,
            "queue_packets": self.queue_packets, "queue_bytes": self.queue_bytes,
            "drops": [rule.to_json() for rule in self.drops],
            "trace": self.trace.to_json() if self.trace is not None else None,
            "distribution": self.distribution.value, "correlation": self.correlation,
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "direction") -> DirectionConfig:
        """The inverse of `to_json`; a bad document is a ConfigError naming the key."""
        doc = check_document(data, where, set(_DIRECTION_KEYS), set(_LATER_KEYS))
        values: dict[str, Any] = {}
        for key, optional in _DIRECTION_KEYS.items():
            value: Any = doc.get(key, _LATER_KEYS.get(key))
            if key == "trace":
                if value is not None:
                    value = DeliveryTrace.from_json(value, f"{where}.trace")
            elif key == "distribution":
                if not isinstance(value, str) or value not in {d.value for d in Distribution}:
                    raise ConfigError(f"{where}.distribution must be one of "
                                      f"{', '.join(d.value for d in Distribution)}, "
                                      f"got {value!r}")
                value = Distribution(value)
            elif key == "reorder":
                check_type(f"{where}.reorder", value, bool, "true or false")
            elif key == "drops":
                check_type(f"{where}.drops", value, list, "a list of drop rules")
                value = tuple(DropRule.from_json(rule, f"{where}.drops[{i}]")
                              for i, rule in enumerate(value))
            elif not (optional and value is None):
                BOUNDS[key].check(value, f"{where}.{key}")
            values[key] = value
        return prefixed(where, lambda: cls(**values))


# Keys of a direction's document; True: may be null.
_DIRECTION_KEYS = {
    "delay_ns": False, "jitter_ns": False, "reorder": False, "loss": False, "burst": True,
    "rate_bps": True, "queue_packets": True, "queue_bytes": True, "drops": False,
    "trace": True, "distribution": False, "correlation": False,
}
# Keys added after documents were first stored: absent means this default.
_LATER_KEYS: dict[str, Any] = {"trace": None, "distribution": "uniform", "correlation": 0.0}


@dataclass(frozen=True)
class LinkProfile:
    """A whole link: one config per direction, and the seed that makes it reproducible."""

    name: str
    up: DirectionConfig
    down: DirectionConfig
    seed: int = 1
    mtu: int = 1500
    description: str = ""
    # The address family the lab's traffic uses: both sides always have both (10.77.X.0/24
    # and fd00:77:0:X::/64); this picks which one `EmulatedLink.server_addr` is.
    ip: int = 4

    def __post_init__(self) -> None:
        check_type("profile name", self.name, str, "a string")
        if self.ip not in (4, 6) or isinstance(self.ip, bool):
            raise ConfigError(f"--ip must be 4 or 6, got {self.ip!r}")
        check_type("profile description", self.description, str, "a string")
        BOUNDS["seed"].check(self.seed)
        BOUNDS["mtu"].check(self.mtu)
        for cfg in (self.up, self.down):
            check_type("a direction", cfg, DirectionConfig, "a DirectionConfig")
            if cfg.queue_bytes is not None and cfg.queue_bytes < self.mtu:
                raise ConfigError(
                    f"--queue {cfg.queue_bytes} bytes cannot hold one {self.mtu}-byte packet",
                    hint=f"use at least {self.mtu} bytes or a packet count like 25p",
                )
        for cfg, direction in ((self.up, Direction.UP), (self.down, Direction.DOWN)):
            for rule in cfg.drops:
                if rule.direction is not direction:
                    raise ConfigError(
                        f"drop rule {rule.describe()} is stored under the {direction.value} "
                        "direction",
                    )

    def direction(self, which: Direction) -> DirectionConfig:
        return self.up if which is Direction.UP else self.down

    @property
    def base_rtt_ns(self) -> int:
        """Round-trip propagation delay (no serialisation, no jitter)."""
        return self.up.delay_ns + self.down.delay_ns

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (ints, floats, strings, lists, bools, null): for the forwarder
        process, for results, and for cells shipped to other processes or machines.
        `LinkProfile.from_json(p.to_json()) == p`."""
        return {
            "name": self.name, "description": self.description, "seed": self.seed,
            "mtu": self.mtu, "up": self.up.to_json(), "down": self.down.to_json(),
            "ip": self.ip,
        }

    @classmethod
    def from_json(cls, data: Any) -> LinkProfile:
        """A profile from `to_json`'s document, validated as the CLI validates options:
        a missing, unknown or bad key is a ConfigError that names it."""
        where = "link profile"
        doc = check_document(data, where,
                             {"name", "description", "seed", "mtu", "up", "down", "ip"}, {"ip"})
        ip = doc.get("ip", 4)
        if ip not in (4, 6) or isinstance(ip, bool):
            raise ConfigError(f"{where}.ip must be 4 or 6, got {ip!r}")
        check_type(f"{where}.name", doc["name"], str, "a string")
        check_type(f"{where}.description", doc["description"], str, "a string")
        BOUNDS["seed"].check(doc["seed"], f"{where}.seed")
        BOUNDS["mtu"].check(doc["mtu"], f"{where}.mtu")
        up = DirectionConfig.from_json(doc["up"], f"{where}.up")
        down = DirectionConfig.from_json(doc["down"], f"{where}.down")
        return prefixed(where, lambda: cls(name=doc["name"], up=up, down=down, seed=doc["seed"],
                                           mtu=doc["mtu"], description=doc["description"],
                                           ip=ip))
