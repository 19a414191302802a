"""The link's own error during a span: how late its scheduled deliveries left.

Every latency the lab measures inherits the link's lateness. When the machine holds the
forwarder up (a VM whose host does not run its vCPU for a few milliseconds, measured in
docs/netem.md#timing) the packets due meanwhile leave late, and the cell's numbers carry
it; a user must be able to see that in the cell, not only in a benchmark.
"""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from protolab.bench.summary import link_lateness, link_notes
from protolab.netem.counters import LATE_SLOTS, Lateness, late_words
from tests.netem.conftest import LinkFactory


def test_a_span_is_the_histogram_difference_and_reads_in_words() -> None:
    before = Lateness((5, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
    after = Lateness((9, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 0, 0, 0))
    span = after.since(before)
    assert span.deliveries == 8
    assert span.over_1ms == 3  # slots 11 (1-2 ms) and 12 (2-4 ms)
    assert span.worst_us == 4096.0
    assert span.percentile_us(50) == 1.0
    assert Lateness().worst_us == 0.0
    assert late_words(4096.0) == "< 4.1 ms"
    assert late_words(64.0) == "< 64 us"
    # The last slot has no upper edge: a 50 ms stall is "at least 16 ms", never "< 33".
    assert late_words(float(1 << (LATE_SLOTS - 1))) == "≥ 16 ms"


def test_a_cells_lateness_sums_its_repetitions_and_becomes_a_note() -> None:
    reps = [{"late_deliveries": 1000, "late_1ms": 0, "late_worst_us": 256},
            {"late_deliveries": 1200, "late_1ms": 3, "late_worst_us": 4096}]
    assert link_lateness(reps) == {"deliveries": 2200, "over_1ms": 3, "worst_us": 4096}
    assert link_lateness([{"down_packets": 4}]) == {}  # a store from before: nothing said
    note = link_notes({"link_late_deliveries": 2200, "link_late_1ms": 3,
                       "link_late_worst_us": 4096})
    assert note == ["link left 3 of 2,200 deliveries ≥ 1 ms late (worst < 4.1 ms)"]
    assert link_notes({"link_late_deliveries": 2200, "link_late_1ms": 0}) == []


@pytest.mark.netem
def test_a_stalled_forwarder_shows_as_late_deliveries(make_link: LinkFactory) -> None:
    """20 packets wait out a 50 ms delay in the forwarder when it is stopped for 120 ms,
    as a host that does not run the VM would stop it: they leave ~70 ms late, and the
    link's lateness over the span says so (a generous shape: ≥ 5 of 20)."""
    link = make_link(delay="50ms/0ms")
    pid = link.forwarder_pid
    assert pid is not None
    server = link.call("server", socket.socket, socket.AF_INET, socket.SOCK_DGRAM)
    client = link.call("client", socket.socket, socket.AF_INET, socket.SOCK_DGRAM)
    with server, client:
        server.bind((link.server_addr, 0))
        server.settimeout(10)
        before = link.counters().lateness
        for _ in range(20):
            client.sendto(b"x" * 64, server.getsockname())
        deadline = time.monotonic() + 10
        while link.counters().in_flight < 20 and time.monotonic() < deadline:
            pass  # readiness: every packet read and waiting out its delay
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(0.120)  # the stall itself, not a wait for something to happen
        finally:
            os.kill(pid, signal.SIGCONT)
        for _ in range(20):
            server.recv(2048)
        span = link.counters().lateness.since(before)
    assert span.deliveries == 20
    assert span.over_1ms >= 5
    assert span.worst_us == float(1 << (LATE_SLOTS - 1))  # ≥ 16 ms: the last slot
