"""IPv6 on the link beside IPv4: both families on every link, silent when idle, and a
suite that asks for `ip = 6` runs HTTP/2 over TCP and HTTP/3 over QUIC across it."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from protolab.core.latency import ttfb_ms
from protolab.errors import ConfigError
from protolab.netem.link import EmulatedLink
from protolab.netem.profiles import Overrides, build_profile
from protolab.trace.pcapfile import read_link_records

pytestmark = pytest.mark.netem
MS = 1_000_000
LinkFactory = Callable[..., EmulatedLink]


def _connect_ms(link: EmulatedLink, family: socket.AddressFamily, server: str) -> float:
    listener = link.call("server", socket.socket, family)
    client = link.call("client", socket.socket, family)
    with listener, client:
        listener.bind((server, 0))
        listener.listen(1)
        client.settimeout(10)
        start = time.monotonic_ns()
        client.connect(listener.getsockname()[:2])
        return (time.monotonic_ns() - start) / MS


def test_both_families_cross_the_link_and_nothing_crosses_idle(
    make_link: LinkFactory, tmp_path: Path,
) -> None:
    pcap = tmp_path / "idle.pcap"
    link = make_link(delay="20ms", ip="6", pcap=str(pcap))
    assert link.server_addr == link.server_addr6
    assert link.server_addr6.startswith("fd00:77:0:")
    assert link.server_addr4.startswith("10.77.")
    time.sleep(1.0)  # what the kernel would send by itself (RS, DAD, MLD) goes in ~1 s
    idle = link.counters()
    assert (idle.up.packets_in, idle.down.packets_in) == (0, 0)
    # One TCP handshake round trip (40 ms) each way, over each family.
    assert 40 <= _connect_ms(link, socket.AF_INET6, link.server_addr6) < 60
    assert 40 <= _connect_ms(link, socket.AF_INET, link.server_addr4) < 60


def test_a_bad_family_is_refused() -> None:
    with pytest.raises(ConfigError, match="--ip '5' is not an address family"):
        build_profile("lan", Overrides(ip="5"))


def test_h2_and_h3_cross_the_link_over_ipv6_with_its_delay(
    netem_available: None, tmp_path: Path,
) -> None:
    from protolab.bench.session import run_bench
    from protolab.bench.suite import parse_suite
    from protolab.store import ResultsStore

    suite = parse_suite({
        "variant": [{"label": "h2", "protocol": "h2"}, {"label": "h3", "protocol": "h3"}],
        "repetitions": 1, "warmup": 0, "capture": True,
        "link": {"overrides": {"delay": "25ms", "ip": "6"}},
        "workload": {"paths": ["/bytes/1000"]},
    })
    with ResultsStore(tmp_path / "lab.db") as store:
        result = run_bench(suite, store, tmp_path / "out")
        cells = store.cells(result.run_id)
    assert [c.status for c in cells] == ["ok", "ok"]
    rtt = 50.0
    ttfb = {result.cells[i].variant.label: ttfb_ms(records[0])
            for i, records in result.measured.items()}
    # Fresh connections: TLS 1.3 over TCP answers after 3 round trips, QUIC after 2, so
    # the link's 50 ms RTT bounds each from below; above it is processing (measured here
    # 15-80 ms, the same over IPv4; the bound is generous for a loaded machine).
    assert ttfb["h2"] is not None
    assert 3 * rtt <= ttfb["h2"] < 3 * rtt + 400
    assert ttfb["h3"] is not None
    assert 2 * rtt <= ttfb["h3"] < 2 * rtt + 400
    captures = {p.parent.name.split("-")[2]: p
                for p in (tmp_path / "out").glob("run-*/captures/*/link.pcap")}
    assert sorted(captures) == ["h2", "h3"]
    for label, transport in (("h2", 6), ("h3", 17)):  # TCP, UDP
        packets = [data for _, data in read_link_records(captures[label])]
        assert {p[0] >> 4 for p in packets} == {6}  # every packet on the wire is IPv6
        # IPv6's next header: the transport's, and at most ICMPv6 "port unreachable" for
        # what the server still sent after the client closed its socket (a QUIC client
        # need not wait out the draining period, RFC 9000 §10.2).
        assert transport in {p[6] for p in packets}
        assert {p[6] for p in packets} <= {transport, 58}
