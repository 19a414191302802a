"""What the forwarder counts, and the counters the link reports from its snapshots.

The forwarder keeps one list of `COUNTER_NAMES` slots per direction (a list is cheaper
than a dataclass on the hot path) and a lateness histogram of `LATE_SLOTS` slots; its
"counters" answer on the control socket carries them as JSON, which
`LinkCounters.from_snapshot` reads together with the TUN devices' own drop counts.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

# Counter slots per direction, in the forwarder's order; each is a DirectionCounters field.
COUNTER_NAMES = (
    "packets_in", "bytes_in", "delivered_packets", "delivered_bytes",
    "dropped_loss", "dropped_queue", "dropped_droplist", "write_errors",
)
LATE_SLOTS = 16  # up to 2^15 us (~33 ms); later still lands in the last slot
# Slot 11 holds deliveries 1024..2048 us late: from there on the link added a millisecond
# or more to what it was asked for (measured: these come from the machine holding the
# forwarder up, e.g. a VM's vCPU not run by its host; docs/netem.md#timing).
LATE_SLOT_1MS = 11


def _slot_edge_us(slot: int) -> float:
    """The upper edge of a lateness slot, in us (slot 0: under 1 us)."""
    return float(1 << slot) if slot else 1.0


def late_words(edge_us: float) -> str:
    """A slot's upper edge (`Lateness.worst_us`) in words: "< 4.1 ms"; the last slot is
    open-ended, so its deliveries were *at least* its lower edge late: "≥ 16 ms"."""
    if edge_us >= _slot_edge_us(LATE_SLOTS - 1):
        return f"≥ {_slot_edge_us(LATE_SLOTS - 2) / 1000:.2g} ms"
    return f"< {edge_us / 1000:.2g} ms" if edge_us >= 1000 else f"< {edge_us:g} us"


@dataclass(frozen=True)
class Lateness:
    """How late the forwarder's scheduled deliveries left, against the model's time, over
    some span: slot i of `hist` counts deliveries 2^(i-1)..2^i us late (slot 0: under
    1 us). Deliveries the model held for no time (zero delay, nothing waiting) are not
    scheduled and not counted."""

    hist: tuple[int, ...] = ()

    @property
    def deliveries(self) -> int:
        return sum(self.hist)

    @property
    def over_1ms(self) -> int:
        """Deliveries at least ~1 ms (1024 us) late."""
        return sum(self.hist[LATE_SLOT_1MS:])

    @property
    def worst_us(self) -> float:
        """The upper edge of the latest delivery's slot (0: none scheduled)."""
        used = [slot for slot, n in enumerate(self.hist) if n]
        return _slot_edge_us(used[-1]) if used else 0.0

    def percentile_us(self, q: float) -> float:
        """The upper edge (us) of the slot holding the q-th percentile of lateness."""
        total = self.deliveries
        if not total:
            return 0.0
        seen = 0
        for slot, count in enumerate(self.hist):
            seen += count
            if seen >= total * q / 100:
                return _slot_edge_us(slot)
        return _slot_edge_us(len(self.hist) - 1)

    def since(self, earlier: Lateness) -> Lateness:
        """What happened after `earlier` (a snapshot of the same link)."""
        if not earlier.hist:
            return self
        return Lateness(tuple(a - b for a, b in zip(self.hist, earlier.hist, strict=True)))


@dataclass(frozen=True)
class DirectionCounters:
    """What happened to the packets of one direction since the link came up."""

    packets_in: int = 0  # read from the sending side's TUN
    bytes_in: int = 0
    delivered_packets: int = 0  # written to the receiving side's TUN
    delivered_bytes: int = 0
    dropped_loss: int = 0  # random or bursty loss
    dropped_queue: int = 0  # drop-tail at the rate limit
    dropped_droplist: int = 0  # deterministic drop rules
    write_errors: int = 0  # the receiving TUN refused the packet
    tun_tx_dropped: int = 0  # dropped by the sending TUN before the forwarder read them
    tun_rx_dropped: int = 0  # dropped by the receiving kernel after the forwarder wrote them

    @property
    def dropped(self) -> int:
        return self.dropped_loss + self.dropped_queue + self.dropped_droplist

    @property
    def unseen_drops(self) -> int:
        """Drops outside the model: a sign the forwarder could not keep up."""
        return self.tun_tx_dropped + self.tun_rx_dropped + self.write_errors


@dataclass(frozen=True)
class LinkCounters:
    up: DirectionCounters  # client → server
    down: DirectionCounters  # server → client
    in_flight: int  # packets the forwarder holds for later delivery
    forwarder_cpu_s: float  # user+system CPU time of the forwarder process
    late_mean_ns: int  # how late delayed packets left, on average, against the model's time
    late_max_ns: int  # ... and at worst
    at_ns: int  # monotonic time of the snapshot
    epoch_ns: int = 0  # monotonic time the link came up: a delivery trace's time 0
    # Deliveries per lateness slot: slot i is 2^(i-1)..2^i us late (slot 0: under 1 us).
    late_hist: tuple[int, ...] = ()

    @property
    def lateness(self) -> Lateness:
        """The lateness histogram since the link came up; `.since(before)` for a span."""
        return Lateness(self.late_hist)

    @classmethod
    def from_snapshot(cls, raw: dict[str, Any], client_tun: tuple[int, int],
                      server_tun: tuple[int, int]) -> LinkCounters:
        """The forwarder's counters answer, with each TUN device's (tx, rx) drops: up
        packets leave the client's device and enter the server's, down the reverse."""
        (c_tx, c_rx), (s_tx, s_rx) = client_tun, server_tun
        return cls(
            up=_direction(raw["up"], c_tx, s_rx),
            down=_direction(raw["down"], s_tx, c_rx),
            in_flight=raw["in_flight"],
            forwarder_cpu_s=raw["cpu_s"],
            late_mean_ns=raw["late_mean_ns"],
            late_max_ns=raw["late_max_ns"],
            late_hist=tuple(raw.get("late_hist", ())),
            at_ns=raw["at_ns"],
            epoch_ns=raw.get("epoch_ns", 0),
        )


def _direction(raw: dict[str, int], tx_dropped: int, rx_dropped: int) -> DirectionCounters:
    known = {f.name for f in fields(DirectionCounters)}
    values = {k: v for k, v in raw.items() if k in known}
    return DirectionCounters(**values, tun_tx_dropped=tx_dropped, tun_rx_dropped=rx_dropped)
