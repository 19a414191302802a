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

    def late_percentile_us(self, q: float) -> float:
        """The upper edge (us) of the slot holding the q-th percentile of lateness."""
        total = sum(self.late_hist)
        if not total:
            return 0.0
        seen = 0
        for slot, count in enumerate(self.late_hist):
            seen += count
            if seen >= total * q / 100:
                return float(1 << slot) if slot else 1.0
        return float(1 << (len(self.late_hist) - 1))

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
