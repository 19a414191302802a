"""What a link is configured to do: frozen, validated data and nothing else.

A `LinkProfile` holds one `DirectionConfig` per direction: `up` is client→server,
`down` is server→client. Every field is checked when the object is built, so a
profile that exists is one the model and the forwarder can apply exactly; errors
name the option a user typed (`--delay`, `--loss`, ...) so they can fix it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from protolab.errors import ConfigError


class Direction(StrEnum):
    """Which way a packet crosses the link."""

    UP = "up"  # client → server
    DOWN = "down"  # server → client


# IP protocol numbers a drop rule may filter on; ports exist only for TCP and UDP.
PROTOCOL_NUMBERS: dict[str, int] = {"tcp": 6, "udp": 17, "icmp": 1}
PORTED_PROTOCOLS = frozenset({"tcp", "udp"})


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
        if not self.indices:
            raise ConfigError("--drop lists no packet numbers", hint="e.g. --drop down:12,13")
        bad = sorted(i for i in self.indices if i < 1)
        if bad:
            raise ConfigError(
                f"--drop packet numbers start at 1, got {bad[0]}",
                hint="packets are counted per direction from 1",
            )
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
            # Port 0 never appears on the wire (it means "any" to bind()).
            if not 1 <= self.port <= 65535:
                raise ConfigError(
                    f"--drop port {self.port} can never match",
                    hint="ports on the wire are 1..65535",
                )

    def describe(self) -> str:
        numbers = ",".join(str(i) for i in sorted(self.indices))
        what = self.protocol or "any"
        if self.port is not None:
            what += f"/{self.port}"
        return f"{self.direction.value}:{numbers}:{what}"


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

    def __post_init__(self) -> None:
        if self.delay_ns < 0:
            raise ConfigError(f"--delay must not be negative, got {self.delay_ns / 1e6:g} ms")
        if self.jitter_ns < 0:
            raise ConfigError(f"--jitter must not be negative, got {self.jitter_ns / 1e6:g} ms")
        if self.jitter_ns > self.delay_ns:
            raise ConfigError(
                f"--jitter {self.jitter_ns / 1e6:g} ms exceeds --delay {self.delay_ns / 1e6:g} ms",
                hint="a packet cannot arrive before it was sent; raise the delay or lower jitter",
            )
        if not 0.0 <= self.loss <= 1.0:
            raise ConfigError(f"--loss must be within 0..100%, got {self.loss * 100:g}%")
        if self.burst is not None:
            self._check_burst(self.burst)
        if self.rate_bps is not None and self.rate_bps <= 0:
            raise ConfigError(f"--rate must be positive, got {self.rate_bps} bit/s")
        for name, limit in (("packets", self.queue_packets), ("bytes", self.queue_bytes)):
            if limit is None:
                continue
            if self.rate_bps is None:
                raise ConfigError(
                    "--queue needs --rate: without a bottleneck no queue ever forms",
                    hint="add e.g. --rate 10mbit",
                )
            if limit < 1:
                raise ConfigError(f"--queue must hold at least 1, got {limit} {name}")
        for rule in self.drops:
            if not isinstance(rule, DropRule):
                raise ConfigError(f"drop rules must be DropRule, got {type(rule).__name__}")

    def _check_burst(self, burst: float) -> None:
        if burst < 1.0:
            raise ConfigError(
                f"--burst is a mean burst length in packets and must be >= 1, got {burst:g}"
            )
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
        )


@dataclass(frozen=True)
class LinkProfile:
    """A whole link: one config per direction, and the seed that makes it reproducible."""

    name: str
    up: DirectionConfig
    down: DirectionConfig
    seed: int = 1
    mtu: int = 1500
    description: str = ""

    def __post_init__(self) -> None:
        if not 576 <= self.mtu <= 65535:
            raise ConfigError(f"--mtu must be within 576..65535, got {self.mtu}")
        for cfg in (self.up, self.down):
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


def profile_to_dict(profile: LinkProfile) -> dict[str, Any]:
    """Plain JSON-able data, to hand a profile to the forwarder process and to results."""

    def direction(cfg: DirectionConfig) -> dict[str, Any]:
        data = asdict(cfg)
        data["drops"] = [
            {"direction": r.direction.value, "indices": sorted(r.indices),
             "protocol": r.protocol, "port": r.port}
            for r in cfg.drops
        ]
        return data

    return {
        "name": profile.name, "seed": profile.seed, "mtu": profile.mtu,
        "description": profile.description,
        "up": direction(profile.up), "down": direction(profile.down),
    }


def profile_from_dict(data: dict[str, Any]) -> LinkProfile:
    def direction(raw: dict[str, Any]) -> DirectionConfig:
        fields = dict(raw)
        fields["drops"] = tuple(
            DropRule(Direction(r["direction"]), frozenset(r["indices"]), r["protocol"], r["port"])
            for r in raw["drops"]
        )
        return DirectionConfig(**fields)

    return LinkProfile(
        name=data["name"], seed=data["seed"], mtu=data["mtu"], description=data["description"],
        up=direction(data["up"]), down=direction(data["down"]),
    )
