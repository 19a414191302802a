"""Reading pcap and pcapng files into timestamped link-layer frames.

Hand-written because it is small: no maintained pure-Python reader is a dependency of
the lab yet (dpkt and scapy are far larger than the two formats' few record types), and
a reader that stops at the first damaged record, keeping everything before it, is what
bad-input handling needs. Formats: libpcap (both byte orders, micro- and nanosecond
magic) and pcapng (SHB, IDB with if_tsresol and if_name, EPB with its comment and flags,
SPB; other blocks skipped).

The emulated link's own capture (protolab/netem/pcap.py) also holds the packets the
link dropped, on an interface named ``dropped``: they are kept apart in
`CaptureFile.dropped`, so every decoder that reads `frames` sees what was delivered.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from protolab.netem.pcap import CLOCK_COMMENT
from protolab.trace.errors import TraceInputError

PCAP_MAGICS = {0xA1B2C3D4: 1_000, 0xA1B23C4D: 1}  # magic -> ns per timestamp fraction unit
PCAPNG_SHB = 0x0A0D0D0A
BYTE_ORDER_MAGIC = 0x1A2B3C4D


@dataclass(frozen=True)
class Frame:
    """One captured frame: when (ns since the epoch), its link type and bytes."""

    ts_ns: int
    linktype: int
    data: bytes
    orig_len: int
    comment: str = ""  # pcapng opt_comment (the link's reason for a drop)
    flags: int = 0  # pcapng epb_flags: bits 0-1 direction (1 inbound, 2 outbound)


DROPPED_INTERFACE = "dropped"  # the interface name the emulated link records drops on


@dataclass
class CaptureFile:
    """Frames read so far, and what went wrong reading the rest (empty when nothing did)."""

    frames: list[Frame] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    dropped: list[Frame] = field(default_factory=list)  # what the link dropped, not delivered
    comments: list[str] = field(default_factory=list)  # section header comments

    def comment_value(self, key: str) -> str | None:
        """`key=VALUE` from a section header comment (the link writes its clock offset)."""
        for comment in self.comments:
            for word in comment.replace(",", " ").split():
                if word.startswith(key + "="):
                    return word[len(key) + 1:]
        return None


def read_capture(data: bytes) -> CaptureFile:
    """Parse a pcap or pcapng image; raises TraceInputError only when it is neither."""
    if len(data) < 4:
        raise TraceInputError("not a pcap or pcapng file: empty or shorter than any file header")
    if struct.unpack_from("<I", data)[0] == PCAPNG_SHB:
        return _read_pcapng(data)
    for order in ("<", ">"):
        magic = struct.unpack_from(order + "I", data)[0]
        if magic in PCAP_MAGICS:
            return _read_pcap(data, order, PCAP_MAGICS[magic])
    raise TraceInputError(
        "not a pcap or pcapng file (unknown magic number)",
        hint="give a capture written by tcpdump, Wireshark, tshark or protolab",
    )


def _read_pcap(data: bytes, order: str, frac_ns: int) -> CaptureFile:
    out = CaptureFile()
    if len(data) < 24:
        out.problems.append("truncated pcap file header")
        return out
    linktype = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFFFFFF
    pos = 24
    while pos < len(data):
        if pos + 16 > len(data):
            out.problems.append(f"truncated record header at byte {pos}")
            break
        sec, frac, incl, orig = struct.unpack_from(order + "IIII", data, pos)
        pos += 16
        if pos + incl > len(data):
            out.problems.append(f"truncated record at byte {pos - 16} ({incl} bytes announced)")
            break
        out.frames.append(
            Frame(sec * 1_000_000_000 + frac * frac_ns, linktype, data[pos:pos + incl], orig)
        )
        pos += incl
    return out


def _tsresol(value: int) -> int:
    """if_tsresol as ticks per second: 10^n, or 2^n with the top bit set (pcapng §4.2)."""
    if value & 0x80:
        return 1 << min(value & 0x7F, 64)
    return int(10 ** min(value, 30))


def _read_pcapng(data: bytes) -> CaptureFile:
    out = CaptureFile()
    order = "<"
    interfaces: list[tuple[int, int, str]] = []  # (linktype, ticks per second, name)
    pos = 0
    while pos < len(data):
        if pos + 12 > len(data):
            out.problems.append(f"truncated block header at byte {pos}")
            break
        btype = struct.unpack_from(order + "I", data, pos)[0]
        if btype == PCAPNG_SHB:
            bom = struct.unpack_from("<I", data, pos + 8)[0]
            order = "<" if bom == BYTE_ORDER_MAGIC else ">"
            if struct.unpack_from(order + "I", data, pos + 8)[0] != BYTE_ORDER_MAGIC:
                out.problems.append(f"bad pcapng byte-order magic at byte {pos}")
                break
            interfaces = []
        blen = struct.unpack_from(order + "I", data, pos + 4)[0]
        if blen < 12 or blen % 4 or pos + blen > len(data):
            out.problems.append(f"truncated or corrupt block at byte {pos} (length {blen})")
            break
        body = data[pos + 8:pos + blen - 4]
        if btype == PCAPNG_SHB and len(body) > 16:
            out.comments += [v.decode("utf-8", "replace")
                             for code, v in _options(body[16:], order) if code == 1]
        elif btype == 1 and len(body) >= 8:  # Interface Description Block
            linktype = struct.unpack_from(order + "H", body)[0]
            options = _options(body[8:], order)
            name = next((v.decode("utf-8", "replace") for c, v in options if c == 2), "")
            interfaces.append((linktype, _idb_tsresol(options), name))
        elif btype == 6 and len(body) >= 20:  # Enhanced Packet Block
            iface, hi, lo, incl, orig = struct.unpack_from(order + "IIIII", body)
            if iface >= len(interfaces) or 20 + incl > len(body):
                out.problems.append(f"packet block at byte {pos} names no interface or overruns")
            else:
                linktype, per_second, name = interfaces[iface]
                ts = ((hi << 32) | lo) * 1_000_000_000 // per_second
                comment, flags = "", 0
                for code, value in _options(body[20 + incl + (-incl % 4):], order):
                    if code == 1:
                        comment = value.decode("utf-8", "replace")
                    elif code == 2 and len(value) == 4:
                        flags = struct.unpack(order + "I", value)[0]
                frame = Frame(ts, linktype, body[20:20 + incl], orig, comment, flags)
                (out.dropped if name == DROPPED_INTERFACE else out.frames).append(frame)
        elif btype == 3 and len(body) >= 4 and interfaces:  # Simple Packet Block
            orig = struct.unpack_from(order + "I", body)[0]
            out.frames.append(Frame(0, interfaces[0][0], body[4:4 + orig], orig))
        pos += blen
    return out


def _options(raw: bytes, order: str) -> list[tuple[int, bytes]]:
    """A block's (code, value) options, up to opt_endofopt or the first that overruns."""
    out = []
    pos = 0
    while pos + 4 <= len(raw):
        code, length = struct.unpack_from(order + "HH", raw, pos)
        if code == 0 or pos + 4 + length > len(raw):
            break
        out.append((code, raw[pos + 4:pos + 4 + length]))
        pos += 4 + length + (-length % 4)
    return out


def _idb_tsresol(options: list[tuple[int, bytes]]) -> int:
    for code, value in options:
        if code == 9 and value:
            return _tsresol(value[0])
    return 1_000_000  # default: microseconds


def read_link_records(path: str | Path) -> list[tuple[int, bytes]]:
    """(wall-clock ns, packet) of every packet the emulated link delivered, from its
    pcapng (protolab/netem/pcap.py writes it; this is the one reader of it)."""
    capture = read_capture(Path(path).read_bytes())
    if capture.comment_value(CLOCK_COMMENT.rstrip("=")) is None:
        raise ValueError(f"{path}: not a capture of the emulated link")
    return [(frame.ts_ns, frame.data) for frame in capture.frames]
