"""The link model on a fake clock: exact times, binomial loss, GE bursts, drop lists."""

from __future__ import annotations

import math
import struct

import pytest

from protolab.netem.config import Direction, DirectionConfig, DropRule
from protolab.netem.model import DirectionModel, GilbertElliott, Verdict

MS = 1_000_000
PKT = bytes(1500)


def ipv4(proto: int, sport: int, dport: int, size: int = 100) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, size, 0, 0, 64, proto, 0,
                         bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    ports = struct.pack("!HH", sport, dport)
    return header + ports + bytes(size - len(header) - len(ports))


def model(**fields: object) -> DirectionModel:
    return DirectionModel(DirectionConfig(**fields), Direction.DOWN, seed=7)  # type: ignore[arg-type]


def test_propagation_delay_is_exact() -> None:
    m = model(delay_ns=40 * MS)
    got = [m.offer(PKT, t) for t in (0, 1 * MS, 5 * MS)]
    assert [d.deliver_at_ns for d in got] == [40 * MS, 41 * MS, 45 * MS]
    assert {d.verdict for d in got} == {Verdict.DELIVER}


def test_serialisation_delay_queues_back_to_back_packets() -> None:
    # 1500 bytes at 12 Mbit/s take exactly 1 ms on the wire.
    m = model(delay_ns=10 * MS, rate_bps=12_000_000)
    got = [m.offer(PKT, 0).deliver_at_ns for _ in range(3)]
    assert got == [11 * MS, 12 * MS, 13 * MS]
    # An idle link serialises a late packet from its own arrival time.
    assert m.offer(PKT, 20 * MS).deliver_at_ns == 31 * MS


def test_drop_tail_queue_in_packets() -> None:
    m = model(delay_ns=10 * MS, rate_bps=12_000_000, queue_packets=2)
    verdicts = [m.offer(PKT, 0).verdict for _ in range(5)]
    # One on the wire, two waiting, the rest tail-dropped.
    assert verdicts == [Verdict.DELIVER] * 3 + [Verdict.QUEUE] * 2
    assert m.queued(0) == (2, 3000)
    # At 1 ms the first waiting packet starts: one slot frees up.
    assert m.queued(1 * MS) == (1, 1500)
    d = m.offer(PKT, 1 * MS)
    assert d == (Verdict.DELIVER, 14 * MS)
    assert m.offer(PKT, 1 * MS).verdict is Verdict.QUEUE


def test_drop_tail_queue_in_bytes() -> None:
    m = model(rate_bps=12_000_000, queue_bytes=3200)
    verdicts = [m.offer(PKT, 0).verdict for _ in range(4)]
    assert verdicts == [Verdict.DELIVER] * 3 + [Verdict.QUEUE]
    # A small packet still fits in the 200 bytes left.
    assert m.offer(bytes(200), 0).verdict is Verdict.DELIVER


def binomial_ok(lost: int, n: int, p: float, z: float = 4.5) -> bool:
    sigma = math.sqrt(n * p * (1 - p))
    return abs(lost - n * p) <= z * sigma


@pytest.mark.parametrize("p", [0.01, 0.05, 0.3])
def test_random_loss_within_binomial_bounds(p: float) -> None:
    m = model(loss=p)
    n = 50_000
    lost = sum(m.offer(PKT, i).verdict is Verdict.LOSS for i in range(n))
    assert binomial_ok(lost, n, p)


def test_same_seed_same_decisions_other_seed_differs() -> None:
    cfg = DirectionConfig(loss=0.1, delay_ns=20 * MS, jitter_ns=5 * MS, reorder=True)

    def run(seed: int) -> list[tuple[int, int]]:
        m = DirectionModel(cfg, Direction.UP, seed)
        return [tuple(m.offer(PKT, i * MS)) for i in range(2000)]  # type: ignore[misc]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_jitter_does_not_change_which_packets_are_lost() -> None:
    def lost(jitter: int) -> list[int]:
        m = model(loss=0.05, delay_ns=20 * MS, jitter_ns=jitter)
        return [i for i in range(5000) if m.offer(PKT, i * MS).verdict is Verdict.LOSS]

    assert lost(0) == lost(5 * MS)


def test_jitter_without_reordering_keeps_order() -> None:
    m = model(delay_ns=20 * MS, jitter_ns=10 * MS)
    times = [m.offer(PKT, i * 100_000).deliver_at_ns for i in range(5000)]
    assert times == sorted(times)
    assert all(t - i * 100_000 >= 10 * MS for i, t in enumerate(times))


def test_jitter_with_reordering_stays_in_band_and_reorders() -> None:
    m = model(delay_ns=20 * MS, jitter_ns=10 * MS, reorder=True)
    times = [m.offer(PKT, i * 100_000).deliver_at_ns for i in range(5000)]
    delays = [t - i * 100_000 for i, t in enumerate(times)]
    assert min(delays) >= 10 * MS
    assert max(delays) <= 30 * MS
    assert times != sorted(times)
    # Uniform in [-j, +j]: the mean sits at the delay.
    assert abs(sum(delays) / len(delays) - 20 * MS) < 0.5 * MS


def burst_lengths(losses: list[bool]) -> list[int]:
    runs, current = [], 0
    for lost in losses:
        if lost:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    return runs


@pytest.mark.parametrize(("p", "b"), [(0.02, 4.0), (0.1, 2.0), (0.05, 1.0)])
def test_gilbert_elliott_mean_loss_and_burst_length(p: float, b: float) -> None:
    m = model(loss=p, burst=b)
    n = 400_000
    losses = [m.offer(PKT, i).verdict is Verdict.LOSS for i in range(n)]
    rate = sum(losses) / n
    runs = burst_lengths(losses)
    assert abs(rate - p) < 0.1 * p
    assert abs(sum(runs) / len(runs) - b) < 0.05 * b
    if b > 1:
        # Bursty, not independent: P(loss | previous lost) is 1 - 1/b, far above p.
        pairs = sum(1 for a, c in zip(losses, losses[1:], strict=False) if a and c)
        assert pairs / sum(losses) == pytest.approx(1 - 1 / b, abs=0.03)


def test_gilbert_elliott_transition_probabilities() -> None:
    import random

    ge = GilbertElliott(0.02, 4.0, random.Random(1))
    assert ge.r == 0.25
    assert ge.q == pytest.approx(0.02 * 0.25 / 0.98)


def test_drop_list_drops_exactly_the_named_packets() -> None:
    rule = DropRule(Direction.DOWN, frozenset({3, 5}))
    m = model(drops=(rule,))
    dropped = [i for i in range(1, 11) if m.offer(PKT, i).verdict is Verdict.DROPLIST]
    assert dropped == [3, 5]


def test_drop_list_counts_only_matching_protocol_and_port() -> None:
    rule = DropRule(Direction.DOWN, frozenset({2}), protocol="udp", port=443)
    m = model(drops=(rule,))
    sequence = [
        ipv4(6, 443, 5000),  # TCP from 443: not counted
        ipv4(17, 443, 5000),  # UDP/443 #1
        ipv4(17, 53, 5000),  # other port: not counted
        ipv4(17, 5000, 443),  # UDP/443 #2 (destination port) -> dropped
        ipv4(17, 443, 5000),  # #3
    ]
    verdicts = [m.offer(p, i).verdict for i, p in enumerate(sequence)]
    assert verdicts == [Verdict.DELIVER] * 3 + [Verdict.DROPLIST, Verdict.DELIVER]


def test_drop_list_beats_random_loss_in_the_verdict() -> None:
    m = model(loss=1.0, drops=(DropRule(Direction.DOWN, frozenset({1})),))
    assert m.offer(PKT, 0).verdict is Verdict.DROPLIST
    assert m.offer(PKT, 1).verdict is Verdict.LOSS
