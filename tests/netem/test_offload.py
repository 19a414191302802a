"""TCP offload on the link's devices: 64 KB super-packets where the model decides nothing.

A direction with no loss, rate, jitter, trace or drop rule only delays (or passes) what
it gets, so its device hands the forwarder whole TCP super-packets, as a NIC with TSO
takes them; everything else stays packet by packet. What a user must be able to rely
on: the bytes arrive unchanged in both directions and both families, the counters still
count wire packets, a capture still shows wire packets, and an impaired direction is
never offloaded (its drop lists count real packets).
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from protolab.netem import forwarder, measure, state
from protolab.netem.config import DirectionConfig
from protolab.netem.link import EmulatedLink
from protolab.trace.pcapfile import read_link_records
from tests.netem.conftest import LinkFactory

PAYLOAD = random.Random(13).randbytes(6_000_000)  # big enough for many super-packets


def _vnet(gso_size: int, gso_type: int = 1) -> bytes:
    """A virtio_net_hdr as a TUN device writes it (legacy: native byte order)."""
    order = "<" if sys.byteorder == "little" else ">"
    return struct.pack(f"{order}BBHHHH", 1, gso_type, 52, gso_size, 0, 0)


def test_a_super_packet_counts_as_the_segments_it_stands_for() -> None:
    ipv4_tcp = bytes([0x45]) + bytes(19) + bytes([0] * 12 + [0x80]) + bytes(19)  # 20 + 32
    data = _vnet(1448) + ipv4_tcp + bytes(1448 * 10 + 100)
    assert forwarder._wire(data) == (11, 1448 * 10 + 100 + 11 * 52)
    ipv6_tcp = bytes([0x60]) + bytes(39) + bytes([0] * 12 + [0x50]) + bytes(7)  # 40 + 20
    data = _vnet(1000) + ipv6_tcp + bytes(3000)
    assert forwarder._wire(data) == (3, 3000 + 3 * 60)
    assert forwarder._wire(_vnet(1000) + bytes([0x45]) + bytes(9)) == (1, 10)  # cut short


def test_only_a_direction_that_decides_nothing_per_packet_is_offloaded() -> None:
    assert forwarder.offloadable(DirectionConfig(delay_ns=50_000_000))
    for impaired in (DirectionConfig(loss=0.01), DirectionConfig(rate_bps=10_000_000),
                     DirectionConfig(delay_ns=10_000_000, jitter_ns=1_000_000)):
        assert not forwarder.offloadable(impaired)


def _transfer(link: EmulatedLink, payload: bytes, *, upload: bool) -> bytes:
    """Send `payload` over TCP (client→server when `upload`) and return what arrived."""
    family = socket.AF_INET6 if ":" in link.server_addr else socket.AF_INET
    listener = link.call("server", socket.socket, family, socket.SOCK_STREAM)
    client = link.call("client", socket.socket, family, socket.SOCK_STREAM)
    received = bytearray()
    with listener, client:
        listener.bind((link.server_addr, 0))
        listener.listen(1)
        listener.settimeout(30)
        client.settimeout(30)

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(30)
                if upload:
                    while chunk := conn.recv(1 << 20):
                        received.extend(chunk)
                else:
                    conn.sendall(payload)

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        client.connect(listener.getsockname())
        if upload:
            client.sendall(payload)
            client.shutdown(socket.SHUT_WR)
        else:
            while chunk := client.recv(1 << 20):
                received.extend(chunk)
        server.join(30)
    return bytes(received)


@pytest.mark.netem
@pytest.mark.parametrize(("ip", "delay"), [(4, "1ms"), (6, "1ms"), (4, "0ms")],
                         ids=["v4 delayed", "v6 delayed", "v4 passed on as read"])
def test_bytes_arrive_unchanged_and_counters_count_wire_packets(
        make_link: LinkFactory, ip: int, delay: str) -> None:
    link = make_link(delay=delay, ip=str(ip))
    assert link.offload == ("up", "down")
    before = link.counters()
    down = _transfer(link, PAYLOAD, upload=False)
    up = _transfer(link, PAYLOAD, upload=True)
    after = link.counters()
    for got in (down, up):
        assert hashlib.sha256(got).digest() == hashlib.sha256(PAYLOAD).digest()
    for name in ("up", "down"):
        moved = getattr(after, name)
        sent = moved.delivered_packets - getattr(before, name).delivered_packets
        # Each wire packet carries at most an MSS (1448 v4, 1428 v6 with timestamps).
        assert sent >= len(PAYLOAD) / 1448
        assert moved.delivered_bytes - getattr(before, name).delivered_bytes > len(PAYLOAD)
        assert moved.unseen_drops == 0


@pytest.mark.netem
def test_an_impaired_direction_stays_packet_by_packet(make_link: LinkFactory) -> None:
    """Loss on the way down: that direction's device is not offloaded (its losses and
    drop lists are per wire packet); the clean way up is, and both still carry data."""
    link = make_link(delay="1ms", loss="0%/0.5%", seed=3)
    assert link.offload == ("up",)
    assert hashlib.sha256(_transfer(link, PAYLOAD[:1_000_000], upload=False)).digest() == (
        hashlib.sha256(PAYLOAD[:1_000_000]).digest())
    assert _transfer(link, PAYLOAD[:1_000_000], upload=True) == PAYLOAD[:1_000_000]
    assert link.counters().down.dropped_loss > 0


@pytest.mark.netem
def test_a_capture_or_a_refusal_keeps_every_device_packet_by_packet(
        make_link: LinkFactory, tmp_path: Path) -> None:
    pcap = tmp_path / "link.pcap"
    captured = make_link(delay="1ms", pcap=str(pcap))
    assert captured.offload == ()
    assert _transfer(captured, PAYLOAD[:500_000], upload=False) == PAYLOAD[:500_000]
    captured.close()
    sizes = [len(packet) for _, packet in read_link_records(pcap)]
    assert sizes
    assert max(sizes) <= captured.profile.mtu
    plain = make_link(delay="1ms", offload=False)
    assert plain.offload == ()
    assert _transfer(plain, PAYLOAD[:500_000], upload=True) == PAYLOAD[:500_000]


@pytest.mark.netem
def test_udp_crosses_an_offloaded_link(make_link: LinkFactory) -> None:
    """UDP is not segmented here, but its checksums may be left to the receiver: QUIC's
    datagrams must still arrive whole and be accepted."""
    link = make_link(delay="1ms")
    echo = measure.udp_echo(link, count=50, interval_s=0.002, size=1200, wait_s=5.0)
    assert echo.received == 50


@pytest.mark.netem
@pytest.mark.parametrize(("args", "said"), [(["--delay", "5ms"], "TCP offload: up, down"),
                                            (["--delay", "5ms", "--loss", "1%"],
                                             "TCP offload: none")])
def test_netem_up_says_which_directions_are_offloaded(
        netem_available: None, created_namespaces: set[str], args: list[str],
        said: str) -> None:
    name = f"off{os.getpid() % 100000}{len(args)}"
    created_namespaces.update({f"{state.PREFIX}{name}-c", f"{state.PREFIX}{name}-s"})
    up = subprocess.Popen([sys.executable, "-m", "protolab", "netem", "up", "--name", name,
                           *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "COLUMNS": "200"})
    try:
        assert up.stdout is not None
        assert up.stderr is not None
        lines = []
        for line in up.stdout:  # until its readiness line
            lines.append(line.strip())
            if line.startswith("Ctrl-C to remove it."):
                break
        assert any(line.startswith(said) for line in lines), lines
    finally:
        up.send_signal(signal.SIGINT)
        _, errors = up.communicate(timeout=60)
    assert up.returncode == 0, errors  # Ctrl-C: removed, cleanly
