"""The link model: given a packet and the time it arrived, deliver it when, or drop it why.

Sans-IO: no sockets, no clock, no global randomness. Time is passed in (integer
nanoseconds) and every random draw comes from RNGs seeded from the profile's seed
and the direction, so one seed and one packet sequence always give the same decisions.

Per direction the stages are applied in this order, like a real path whose
bottleneck queue sits before a long lossy wire:

1. drop list (deterministic, counted per rule),
2. random or Gilbert-Elliott loss,
3. drop-tail queue in front of the bottleneck: a constant rate (serialisation delay) or
   a mahimahi delivery trace (`trace.TraceSchedule`, opportunities from the link's birth),
4. propagation delay plus jitter of netem's shapes (`jitter.py`; reordering only when
   allowed).

Loss and jitter use separate RNGs and loss draws one number for *every* packet, so
adding jitter or a drop list does not change which packets random loss picks.
"""

from __future__ import annotations

import random
from collections import deque
from enum import IntEnum
from typing import NamedTuple

from protolab.netem import packet as ip
from protolab.netem.config import (
    PROTOCOL_NUMBERS,
    Direction,
    DirectionConfig,
    Distribution,
    DropRule,
)
from protolab.netem.jitter import JitterSource
from protolab.netem.trace import TraceSchedule


class Verdict(IntEnum):
    DELIVER = 0
    LOSS = 1  # random or bursty loss
    QUEUE = 2  # drop-tail: the bottleneck queue was full
    DROPLIST = 3  # a deterministic drop rule named this packet


class Decision(NamedTuple):
    """What the link does with one packet."""

    verdict: Verdict
    deliver_at_ns: int  # when the last bit reaches the far side; -1 when dropped


class GilbertElliott:
    """Two-state loss: every packet in the bad state is lost, none in the good state.

    Parameterised by the mean loss `p` and mean burst length `b` (in packets):
    leaving the bad state has probability r = 1/b per packet, so bursts are geometric
    with mean b; entering it has probability q = p*r/(1-p), which makes the stationary
    share of bad packets q/(q+r) = p. The first state is drawn from that stationary
    distribution so short runs are not biased towards the good state.
    """

    def __init__(self, loss: float, burst: float, rng: random.Random) -> None:
        self.r = 1.0 / burst
        self.q = loss * self.r / (1.0 - loss)
        self._rng = rng
        self.bad = rng.random() < loss

    def lose(self) -> bool:
        lost = self.bad
        u = self._rng.random()
        self.bad = (u >= self.r) if self.bad else (u < self.q)
        return lost


class _RuleCounter:
    __slots__ = ("indices", "port", "protocol", "seen")

    def __init__(self, rule: DropRule) -> None:
        self.indices = rule.indices
        self.protocol = PROTOCOL_NUMBERS[rule.protocol] if rule.protocol else None
        self.port = rule.port
        self.seen = 0

    def hit(self, meta: ip.PacketMeta | None) -> bool:
        if self.protocol is not None or self.port is not None:
            if meta is None:
                return False
            if self.protocol is not None and meta.protocol != self.protocol:
                return False
            if self.port is not None and self.port not in (meta.src_port, meta.dst_port):
                return False
        self.seen += 1
        return self.seen in self.indices


def _rng(seed: int, direction: Direction, purpose: str) -> random.Random:
    # String seeds are hashed (SHA-512) by random.Random: stable across runs and platforms.
    return random.Random(f"protolab/{seed}/{direction.value}/{purpose}")


class DirectionModel:
    """The state of one direction of the link; feed it packets in arrival order."""

    def __init__(self, config: DirectionConfig, direction: Direction, seed: int,
                 start_ns: int = 0) -> None:
        """`start_ns`: when the link came up, where a delivery trace's time 0 lies."""
        self.config = config
        self._loss_rng = _rng(seed, direction, "loss")
        self._jitter_rng = _rng(seed, direction, "jitter")
        # Uniform uncorrelated jitter keeps its historic draws (randint below), so seeds
        # of existing suites give the same delays; other shapes go through netem's tables.
        self._shaped = (
            JitterSource(config.distribution, config.correlation, config.jitter_ns,
                         self._jitter_rng)
            if config.jitter_ns and (config.distribution is not Distribution.UNIFORM
                                     or config.correlation)
            else None
        )
        self._schedule = (TraceSchedule(config.trace, start_ns)
                          if config.trace is not None else None)
        self._ge = (
            GilbertElliott(config.loss, config.burst, self._loss_rng)
            if config.burst is not None
            else None
        )
        self._rules = [_RuleCounter(rule) for rule in config.drops]
        self._needs_meta = any(r.protocol is not None or r.port is not None for r in self._rules)
        # Packets accepted but not yet started on the bottleneck: (start_ns, size).
        self._waiting: deque[tuple[int, int]] = deque()
        self._waiting_bytes = 0
        self._busy_until_ns = 0
        self._last_deliver_ns = 0

    def offer(self, packet: bytes, now_ns: int) -> Decision:
        """Decide the fate of `packet`, which arrived at `now_ns` (non-decreasing)."""
        cfg = self.config
        lost = self._draw_loss()
        if self._rules and self._on_drop_list(packet):
            return Decision(Verdict.DROPLIST, -1)
        if lost:
            return Decision(Verdict.LOSS, -1)
        size = len(packet)
        sent_ns = now_ns
        if cfg.rate_bps is not None:
            finished = self._serialise(size, now_ns, cfg.rate_bps)
            if finished < 0:
                return Decision(Verdict.QUEUE, -1)
            sent_ns = finished
        elif self._schedule is not None:
            finished = self._deliver_by_trace(size, now_ns, self._schedule)
            if finished < 0:
                return Decision(Verdict.QUEUE, -1)
            sent_ns = finished
        deliver = sent_ns + cfg.delay_ns
        if self._shaped is not None:
            # A drawn delay below zero is zero: the packet leaves as it arrives (netem too).
            deliver = max(sent_ns, deliver + self._shaped.draw())
        elif cfg.jitter_ns:
            deliver += self._jitter_rng.randint(-cfg.jitter_ns, cfg.jitter_ns)
        if not cfg.reorder and deliver < self._last_deliver_ns:
            deliver = self._last_deliver_ns
        self._last_deliver_ns = max(self._last_deliver_ns, deliver)
        return Decision(Verdict.DELIVER, deliver)

    def queued(self, now_ns: int) -> tuple[int, int]:
        """(packets, bytes) waiting for the bottleneck at `now_ns`, excluding the one on it."""
        self._drain(now_ns)
        return len(self._waiting), self._waiting_bytes

    def _draw_loss(self) -> bool:
        cfg = self.config
        if self._ge is not None:
            return self._ge.lose()
        if cfg.loss <= 0.0:
            return False
        return self._loss_rng.random() < cfg.loss

    def _on_drop_list(self, packet: bytes) -> bool:
        meta = ip.parse(packet) if self._needs_meta else None
        dropped = False
        for rule in self._rules:
            # Every rule counts every packet it matches, even when another rule drops it.
            if rule.hit(meta):
                dropped = True
        return dropped

    def _drain(self, now_ns: int) -> None:
        waiting = self._waiting
        while waiting and waiting[0][0] <= now_ns:
            self._waiting_bytes -= waiting.popleft()[1]

    def _admit(self, size: int, start: int, now_ns: int) -> bool:
        """Queue a packet that starts on the bottleneck at `start`; False: tail-dropped."""
        cfg = self.config
        if start > now_ns:
            # The queue limit applies to waiting packets only (the one being sent has
            # left the queue), as in ns-3's DropTail and mahimahi's.
            self._drain(now_ns)
            if cfg.queue_packets is not None and len(self._waiting) >= cfg.queue_packets:
                return False
            if cfg.queue_bytes is not None and self._waiting_bytes + size > cfg.queue_bytes:
                return False
            self._waiting.append((start, size))
            self._waiting_bytes += size
        return True

    def _deliver_by_trace(self, size: int, now_ns: int, schedule: TraceSchedule) -> int:
        """When the packet's last byte leaves on the trace's opportunities, or -1 if the
        queue is full. A packet waits from its arrival to its first opportunity."""
        _, finish_k, left, start_ns = schedule.plan(size, now_ns)
        if not self._admit(size, start_ns, now_ns):
            return -1
        return schedule.commit(finish_k, left)

    def _serialise(self, size: int, now_ns: int, rate_bps: int) -> int:
        """Put a packet on the bottleneck: when its last bit leaves, or -1 if tail-dropped."""
        cfg = self.config
        start = max(now_ns, self._busy_until_ns)
        if start > now_ns:
            # The packet has to wait: the queue limit applies to waiting packets only
            # (the one being serialised has left the queue), as in ns-3's DropTail.
            self._drain(now_ns)
            if cfg.queue_packets is not None and len(self._waiting) >= cfg.queue_packets:
                return -1
            if cfg.queue_bytes is not None and self._waiting_bytes + size > cfg.queue_bytes:
                return -1
            self._waiting.append((start, size))
            self._waiting_bytes += size
        # Ceiling division keeps a busy link from ever running faster than configured.
        finish = start + -(-size * 8 * 1_000_000_000 // rate_bps)
        self._busy_until_ns = finish
        return finish


class LinkModel:
    """Both directions of a link, built from a profile's configs and seed."""

    def __init__(self, up: DirectionConfig, down: DirectionConfig, seed: int,
                 start_ns: int = 0) -> None:
        self.epoch_ns = start_ns  # where delivery traces' time 0 lies
        self.up = DirectionModel(up, Direction.UP, seed, start_ns)
        self.down = DirectionModel(down, Direction.DOWN, seed, start_ns)

    def direction(self, which: Direction) -> DirectionModel:
        return self.up if which is Direction.UP else self.down
