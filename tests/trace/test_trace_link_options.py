"""`protolab trace` takes netem's link options (--ip, --distribution, --correlation,
--trace-down/--trace-up), and its decoders read the capture over IPv6 as over IPv4:
real `protolab trace h2-tls13 --ip 6` and `h3 --ip 6` runs over a 200 ms RTT link, and
IPv6 packets (with extension headers) parsed byte by byte."""

from __future__ import annotations

import ipaddress
import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from protolab.netem.privileges import missing
from protolab.trace.packets import LINKTYPE_RAW, parse_frame
from protolab.trace.pcapfile import Frame, read_capture
from tests.helpers import TIMEOUT

ROOT = Path(__file__).resolve().parents[2]


def protolab_trace(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "protolab", "trace", *args],
                          capture_output=True, text=True, timeout=TIMEOUT * 3, check=False,
                          env={**os.environ, "COLUMNS": "120", "PYTHONPATH": str(ROOT)})


def traced_v6(kind: str, out: Path, *extra: str) -> dict[str, Any]:
    lacking = missing()
    if lacking:
        pytest.skip(f"the emulated link cannot be built here: {'; '.join(lacking)}")
    done = protolab_trace(kind, "--ip", "6", "--delay", "100ms", "--json", "--out", str(out),
                          *extra)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def v6(address_port: str) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(address_port.rsplit(":", 1)[0])


def check_round_trips(rt: dict[str, Any], request: int, first_byte: int) -> None:
    """Never faster than the design (physics); later only with the tracer saying why. On a
    loaded machine an endpoint has been seen to stall 100 ms (0.5 RTT) mid-handshake here,
    over IPv4 as over IPv6: that is the tracer's to explain, not this test's to fail."""
    assert (rt["predicted_request"], rt["predicted_first_byte"]) == (request, first_byte)
    assert rt["request_rtts"] >= request - 0.25
    assert rt["first_byte_rtts"] >= first_byte - 0.25
    assert rt["request_rtts"] <= rt["first_byte_rtts"] - 0.75  # the answer: a round trip on
    as_predicted = rt["explanation"] == "as the protocol's design predicts"
    assert as_predicted == (rt["first_byte_rtts"] - first_byte < 0.5), rt


def check_every_packet_is_ipv6(pcap: Path) -> int:
    capture = read_capture(pcap.read_bytes())
    segments = [s for i, f in enumerate(capture.frames) if (s := parse_frame(i, f))]
    assert segments
    assert all(f.data[0] >> 4 == 6 for f in capture.frames)
    assert all(isinstance(ipaddress.ip_address(s.src), ipaddress.IPv6Address)
               for s in segments)
    return len(segments)


@pytest.mark.netem
@pytest.mark.slow
def test_h2_tls13_over_ipv6_decodes_as_over_ipv4(tmp_path: Path) -> None:
    # With netem's other new options too: normal jitter with correlation, a trace's capacity.
    report = traced_v6("h2-tls13", tmp_path / "h2", "--jitter", "1ms", "--distribution",
                       "normal", "--correlation", "25%", "--trace-down", "cellular.down")
    assert json.loads((tmp_path / "h2" / "capture.json").read_text())["rtt_ns"] == 200_000_000
    trace = report["trace"]
    assert v6(trace["client"]) in ipaddress.IPv6Network("fd00:77::/32")
    assert v6(trace["server"]) in ipaddress.IPv6Network("fd00:77::/32")
    assert report["problems"] == []
    assert trace["problems"] == []
    names = [s["name"] for s in trace["steps"]]
    assert names[:3] == ["SYN", "SYN-ACK", "ACK"]
    assert {"ClientHello", "ServerHello", "Certificate", "Finished"} <= set(names)
    assert trace["negotiated"]["decrypted"] is True  # TLS 1.3 decrypted with the key log
    headers = [s["fields"]["headers"] for s in trace["steps"] if s["name"] == "HTTP/2 HEADERS"]
    assert headers[-1][":status"] == "200"
    syn = trace["steps"][0]
    assert syn["packet_bytes"] >= 40 + 20  # an IPv6 header (40 B), not IPv4's 20
    rt = trace["round_trips"]
    assert rt["rtt_source"] == "link"
    assert rt["rtt_ns"] == 200_000_000
    check_round_trips(rt, 2, 3)
    check_every_packet_is_ipv6(Path(report["files"]["pcap"]))


@pytest.mark.netem
@pytest.mark.slow
def test_h3_over_ipv6_decrypts_and_counts_round_trips(tmp_path: Path) -> None:
    report = traced_v6("h3", tmp_path / "h3")
    trace = report["trace"]
    assert v6(trace["client"]) in ipaddress.IPv6Network("fd00:77::/32")
    assert report["problems"] == []
    assert trace["problems"] == []
    assert trace["transport"] == "quic"
    assert trace["negotiated"]["decrypted"] is True
    assert not [s for s in trace["steps"] if s["name"].endswith("(encrypted)")]
    initial = trace["steps"][0]
    assert initial["name"] == "Initial"
    assert initial["fields"]["datagram_bytes"] >= 1200
    assert initial["packet_bytes"] == initial["fields"]["datagram_bytes"] + 48  # IPv6 + UDP
    headers = [s["fields"]["headers"] for s in trace["steps"] if s["name"] == "HTTP/3 HEADERS"]
    assert ":method: GET" in headers[0]
    assert ":status: 200" in headers[1]
    check_round_trips(trace["round_trips"], 1, 2)
    check_every_packet_is_ipv6(Path(report["files"]["pcap"]))


@pytest.mark.parametrize(("args", "message"), [
    (("--ip", "5"), "--ip '5' is not an address family"),
    (("--jitter", "1ms", "--distribution", "bogus"), "is not a delay distribution"),
    (("--trace-down", "/nonexistent/trace"), "no such file"),
], ids=["ip", "distribution", "trace"])
def test_bad_link_options_are_one_line_before_any_link(args: tuple[str, ...],
                                                       message: str) -> None:
    done = protolab_trace("h3", *args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert "Traceback" not in done.stderr


def ipv6_packet(payload: bytes, *, hop_by_hop: bool) -> bytes:
    src = ipaddress.IPv6Address("fd00:77:0:1::1").packed
    dst = ipaddress.IPv6Address("fd00:77:0:1::2").packed
    udp = struct.pack("!HHHH", 4433, 443, 8 + len(payload), 0) + payload
    if hop_by_hop:  # next header UDP, length 0 (8 bytes): a PadN option filling it
        body = bytes([17, 0, 1, 4, 0, 0, 0, 0]) + udp
        next_header = 0
    else:
        body, next_header = udp, 17
    return struct.pack("!IHBB", 6 << 28, len(body), next_header, 64) + src + dst + body


@pytest.mark.parametrize("hop_by_hop", [False, True], ids=["plain", "hop-by-hop header"])
def test_an_ipv6_udp_packet_parses_to_its_addresses_and_payload(hop_by_hop: bool) -> None:
    packet = ipv6_packet(b"quic!", hop_by_hop=hop_by_hop)
    segment = parse_frame(0, Frame(1, LINKTYPE_RAW, packet, len(packet)))
    assert segment is not None
    assert (segment.transport, segment.src, segment.sport, segment.dst, segment.dport) == (
        "udp", "fd00:77:0:1::1", 4433, "fd00:77:0:1::2", 443)
    assert segment.payload == b"quic!"
    assert segment.ip_len == len(packet)
