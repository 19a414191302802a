"""pcap and pcapng reading, including damaged files (keep what precedes the damage)."""

from __future__ import annotations

import struct

import pytest

from protolab.trace.errors import TraceInputError
from protolab.trace.keylog import parse_keylog
from protolab.trace.pcapfile import read_capture

PACKETS = [(1_700_000_000_123_456_789, b"\x45" + bytes(39)), (1_700_000_001_000_000_000, b"x" * 7)]


def pcap(order: str = "<", nanos: bool = True, linktype: int = 101) -> bytes:
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for ts, data in PACKETS:
        frac = ts % 1_000_000_000 if nanos else ts % 1_000_000_000 // 1000
        out += struct.pack(order + "IIII", ts // 1_000_000_000, frac, len(data), len(data)) + data
    return out


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def pcapng(tsresol: int | None = 9) -> bytes:
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    options = b"" if tsresol is None else struct.pack("<HHB3x", 9, 1, tsresol) + b"\0\0\0\0"
    idb = _block(1, struct.pack("<HHI", 101, 0, 65535) + options)
    out = shb + idb
    for ts, data in PACKETS:
        ticks = ts if tsresol == 9 else ts // 1000
        out += _block(6, struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data),
                                     len(data)) + data)
    return out


@pytest.mark.parametrize(("order", "nanos"), [("<", True), (">", True), ("<", False)])
def test_pcap_byte_orders_and_resolutions(order: str, nanos: bool) -> None:
    cap = read_capture(pcap(order, nanos))
    assert not cap.problems
    assert [f.data for f in cap.frames] == [d for _, d in PACKETS]
    expected = [ts if nanos else ts // 1000 * 1000 for ts, _ in PACKETS]
    assert [f.ts_ns for f in cap.frames] == expected
    assert {f.linktype for f in cap.frames} == {101}


@pytest.mark.parametrize("tsresol", [9, None])
def test_pcapng_with_and_without_tsresol(tsresol: int | None) -> None:
    cap = read_capture(pcapng(tsresol))
    assert not cap.problems
    assert [f.data for f in cap.frames] == [d for _, d in PACKETS]
    expected = [ts if tsresol == 9 else ts // 1000 * 1000 for ts, _ in PACKETS]
    assert [f.ts_ns for f in cap.frames] == expected


@pytest.mark.parametrize("maker", [pcap, pcapng])
def test_truncated_capture_keeps_what_precedes_the_damage(maker: object) -> None:
    data = maker()  # type: ignore[operator]
    cap = read_capture(data[:-3])
    assert len(cap.frames) == 1
    assert cap.problems
    assert "truncated" in cap.problems[0]


@pytest.mark.parametrize("data", [b"", b"GIF89a not a capture", b"\0" * 100])
def test_not_a_capture_is_a_clear_error(data: bytes) -> None:
    with pytest.raises(TraceInputError, match="pcap"):
        read_capture(data)


def test_keylog_counts_bad_lines_and_keeps_good_ones() -> None:
    log = parse_keylog("# comment\nCLIENT_RANDOM aabb ccdd\nnonsense\nX zz 00\n\n")
    assert log.get(bytes.fromhex("aabb"), "CLIENT_RANDOM") == bytes.fromhex("ccdd")
    assert log.bad_lines == 2
