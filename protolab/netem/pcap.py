"""A minimal pcap writer for what crossed the emulated link.

Nanosecond pcap (magic 0xa1b23c4d) with LINKTYPE_RAW (101): each record is a bare
IPv4/IPv6 packet exactly as the TUN device carries it, which Wireshark and tshark
open directly. Packets are recorded when the link *delivers* them, with the
forwarder's monotonic clock shifted once to wall-clock time, so gaps in the file
are the link's own delays and are never disturbed by clock steps.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import BinaryIO

PCAP_MAGIC_NS = 0xA1B23C4D
LINKTYPE_RAW = 101
SNAPLEN = 65535


class PcapWriter:
    def __init__(self, path: str | Path, *, snaplen: int = SNAPLEN) -> None:
        self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._snaplen = snaplen
        # One offset, taken once: timestamps stay monotonic however the wall clock moves.
        self._offset_ns = time.time_ns() - time.monotonic_ns()
        self._file.write(
            struct.pack("<IHHiIII", PCAP_MAGIC_NS, 2, 4, 0, 0, snaplen, LINKTYPE_RAW)
        )

    def write(self, monotonic_ns: int, packet: bytes) -> None:
        ts = monotonic_ns + self._offset_ns
        data = packet[: self._snaplen]
        self._file.write(
            struct.pack("<IIII", ts // 1_000_000_000, ts % 1_000_000_000, len(data), len(packet))
        )
        self._file.write(data)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def read_records(path: str | Path) -> list[tuple[int, bytes]]:
    """(wall-clock ns, packet) of every record; for tests and the fidelity benchmark."""
    data = Path(path).read_bytes()
    magic, _, _, _, _, _, linktype = struct.unpack_from("<IHHiIII", data, 0)
    if magic != PCAP_MAGIC_NS or linktype != LINKTYPE_RAW:
        raise ValueError(f"{path}: not a protolab pcap (magic {magic:#x}, linktype {linktype})")
    out = []
    pos = 24
    while pos + 16 <= len(data):
        sec, nsec, incl, _orig = struct.unpack_from("<IIII", data, pos)
        pos += 16
        out.append((sec * 1_000_000_000 + nsec, data[pos : pos + incl]))
        pos += incl
    return out
