"""The link's capture holds what it dropped as well as what it delivered, told apart (an
interface of their own, a comment saying why), and readable by the tracer and tshark."""

from __future__ import annotations

import shutil
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from protolab.netem import measure
from protolab.netem.link import EmulatedLink
from protolab.netem.pcap import CLOCK_COMMENT, PcapWriter
from protolab.trace.pcapfile import read_capture, read_link_records

LinkFactory = Callable[..., EmulatedLink]
UDP = bytes.fromhex("4500001c0000000040110000") + bytes([10, 77, 0, 1, 10, 77, 0, 2]) + \
    struct.pack("!HHHH", 4000, 9, 8, 0)


def one_of_each(path: Path, direction: str, reason: str, index: int) -> Path:
    """A capture of one delivered (up) packet and one dropped one."""
    writer = PcapWriter(path)
    writer.write(1_000, UDP, "up")
    writer.write_drop(2_000, UDP, direction, reason, index)
    writer.close()
    return path


def test_drops_are_kept_apart_with_why_and_when(tmp_path: Path) -> None:
    path = one_of_each(tmp_path / "link.pcap", "down", "burst", 7)
    capture = read_capture(path.read_bytes())
    assert [f.data for f in capture.frames] == [UDP]
    assert len(capture.dropped) == 1
    dropped = capture.dropped[0]
    assert "reason=burst" in dropped.comment
    assert "packet=7" in dropped.comment
    assert dropped.flags & 3 == 1  # inbound: server -> client
    assert capture.frames[0].flags & 3 == 2
    offset = int(capture.comment_value(CLOCK_COMMENT.rstrip("=")) or "x")
    # The stamps come back onto the forwarder's monotonic clock exactly.
    assert capture.frames[0].ts_ns - offset == 1_000
    assert dropped.ts_ns - offset == 2_000
    assert abs(offset - (time.time_ns() - time.monotonic_ns())) < 10**9
    assert read_link_records(path) == [(capture.frames[0].ts_ns, UDP)]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_wireshark_shows_which_packets_the_link_dropped(tmp_path: Path) -> None:
    path = one_of_each(tmp_path / "link.pcap", "up", "droplist", 2)
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e",
                          "frame.interface_name", "-e", "frame.comment"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    lines = [line.split("\t") for line in out.strip().splitlines()]
    assert [line[0] for line in lines] == ["delivered", "dropped"]
    assert "reason=droplist" in lines[1][1]


@pytest.mark.netem
def test_the_link_records_each_drop_with_its_reason(make_link: LinkFactory,
                                                      tmp_path: Path) -> None:
    path = tmp_path / "link.pcap"
    link = make_link(delay="10ms", drop=("up:3,5",), pcap=str(path))
    echo = measure.udp_echo(link, count=10, interval_s=0.01, wait_s=0.3)
    link.close()
    assert echo.sent == 10
    capture = read_capture(path.read_bytes())
    assert len(capture.frames) == 8 + 8  # 8 probes delivered, 8 echoes
    comments = [f.comment for f in capture.dropped]
    assert comments == [
        "dropped by the link (reason=droplist, direction=up, packet=3)",
        "dropped by the link (reason=droplist, direction=up, packet=5)",
    ]
    # A drop is stamped when it reached the link: before the next probe was delivered.
    delivered = sorted(f.ts_ns for f in capture.frames)
    assert delivered[0] < capture.dropped[0].ts_ns < delivered[-1]


@pytest.mark.netem
def test_random_and_bursty_loss_are_named(make_link: LinkFactory, tmp_path: Path) -> None:
    for loss, burst, word in (("30%", None, "loss"), ("30%", "3", "burst")):
        path = tmp_path / f"{word}.pcap"
        overrides = {"burst": burst} if burst else {}
        link = make_link(delay="5ms", loss=loss, seed=2, pcap=str(path), **overrides)
        measure.udp_echo(link, count=60, interval_s=0.002, wait_s=0.2)
        counters = link.counters()
        link.close()
        capture = read_capture(path.read_bytes())
        assert len(capture.dropped) == counters.up.dropped + counters.down.dropped > 0
        assert all(f"reason={word}," in f.comment for f in capture.dropped)
