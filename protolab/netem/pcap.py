"""The link's capture: what it delivered *and* what it dropped, in one pcapng file.

pcapng (Wireshark and tshark open it; `protolab.trace.pcapfile` reads it) with two
interfaces, both LINKTYPE_RAW (bare IPv4/IPv6 packets as the TUN devices carry them)
and nanosecond stamps:

- interface 0, ``delivered``: every packet the link delivered, stamped when the
  forwarder wrote it to the receiving TUN device;
- interface 1, ``dropped``: every packet the link's model dropped, stamped when it
  arrived at the link, with a comment saying why (``reason=loss|burst|queue|droplist``),
  its direction and its number in that direction, e.g.
  ``dropped by the link (reason=droplist, direction=down, packet=40)``.
  In Wireshark: ``frame.interface_name == "dropped"`` or the packet comments.

Both directions carry the EPB direction flag from the client's side (up = outbound,
down = inbound). Stamps are the forwarder's CLOCK_MONOTONIC plus one offset to wall-clock
time taken at start, so gaps are the link's own and never disturbed by clock steps; the
offset is written in the section header's comment (``monotonic_offset_ns=N``), so a
reader recovers the exact monotonic time the lab's records share (`protolab.timing`).
"""

from __future__ import annotations

import contextlib
import struct
import time
from pathlib import Path
from typing import BinaryIO

from protolab.errors import LabError

LINKTYPE_RAW = 101
SNAPLEN = 65535
INTERFACE_DELIVERED = 0
INTERFACE_DROPPED = 1
INTERFACE_NAMES = ("delivered", "dropped")
DROP_REASONS = ("loss", "burst", "queue", "droplist")
CLOCK_COMMENT = "monotonic_offset_ns="
_DIRECTION_FLAGS = {"up": 2, "down": 1}  # pcapng epb_flags bits 0-1: outbound / inbound

_SHB, _IDB, _EPB = 0x0A0D0D0A, 1, 6
_OPT_COMMENT, _OPT_END = 1, 0
_IF_NAME, _IF_DESCRIPTION, _IF_TSRESOL = 2, 3, 9
_SHB_USERAPPL = 4
_EPB_FLAGS = 2


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(btype: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", btype, length) + body + struct.pack("<I", length)


def drop_comment(reason: str, direction: str, index: int) -> str:
    """The comment a dropped packet carries (the reader parses its key=value words)."""
    return f"dropped by the link (reason={reason}, direction={direction}, packet={index})"


class CaptureWriteError(LabError):
    """The capture file refused a write (a full disk, /dev/full, a /proc file): one line
    naming the file and the system's reason."""

    def __init__(self, path: str | Path, exc: OSError) -> None:
        super().__init__(f"cannot write the capture {path}: {exc.strerror or exc}")


class PcapWriter:
    """Writes the link's capture; every write or flush that fails is a `CaptureWriteError`.

    The header is written and flushed at once, so a file that refuses writes is known
    before the link is reported up, not at the first packet.
    """

    def __init__(self, path: str | Path, *, snaplen: int = SNAPLEN) -> None:
        self._path = path
        try:
            self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise CaptureWriteError(path, exc) from None
        try:
            self._header(snaplen)
            self.flush()
        except CaptureWriteError:
            self.discard()
            raise

    def _header(self, snaplen: int) -> None:
        self._snaplen = snaplen
        # One offset, taken once: timestamps stay monotonic however the wall clock moves.
        self._offset_ns = time.time_ns() - time.monotonic_ns()
        comment = (f"protolab emulated link; stamps are CLOCK_MONOTONIC + "
                   f"{CLOCK_COMMENT}{self._offset_ns}")
        shb = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
        shb += _option(_OPT_COMMENT, comment.encode()) + _option(
            _SHB_USERAPPL, b"protolab netem forwarder") + _option(_OPT_END, b"")
        self._write(_block(_SHB, shb))
        descriptions = ("packets the link delivered, stamped at delivery",
                        "packets the link dropped (loss, burst, queue, drop list), "
                        "stamped at arrival")
        for name, description in zip(INTERFACE_NAMES, descriptions, strict=True):
            idb = struct.pack("<HHI", LINKTYPE_RAW, 0, snaplen)
            idb += (_option(_IF_NAME, name.encode())
                    + _option(_IF_DESCRIPTION, description.encode())
                    + _option(_IF_TSRESOL, b"\x09") + _option(_OPT_END, b""))
            self._write(_block(_IDB, idb))

    @property
    def offset_ns(self) -> int:
        """Wall-clock minus monotonic time, as written in the file's header."""
        return self._offset_ns

    def write(self, monotonic_ns: int, packet: bytes, direction: str | None = None) -> None:
        """A packet the link delivered at `monotonic_ns`."""
        self._packet(INTERFACE_DELIVERED, monotonic_ns, packet, direction, None)

    def write_drop(self, monotonic_ns: int, packet: bytes, direction: str, reason: str,
                   index: int) -> None:
        """A packet the link dropped when it arrived at `monotonic_ns`: `reason` is one of
        DROP_REASONS, `index` its number (1-based) among its direction's packets."""
        self._packet(INTERFACE_DROPPED, monotonic_ns, packet, direction,
                     drop_comment(reason, direction, index))

    def _packet(self, interface: int, monotonic_ns: int, packet: bytes,
                direction: str | None, comment: str | None) -> None:
        ts = monotonic_ns + self._offset_ns
        data = packet[: self._snaplen]
        body = struct.pack("<IIIII", interface, ts >> 32, ts & 0xFFFFFFFF, len(data),
                           len(packet))
        body += data + b"\0" * (-len(data) % 4)
        options = b""
        if direction is not None:
            options += _option(_EPB_FLAGS, struct.pack("<I", _DIRECTION_FLAGS[direction]))
        if comment is not None:
            options += _option(_OPT_COMMENT, comment.encode())
        if options:
            body += options + _option(_OPT_END, b"")
        self._write(_block(_EPB, body))

    def _write(self, block: bytes) -> None:
        try:
            self._file.write(block)
        except OSError as exc:
            raise CaptureWriteError(self._path, exc) from None

    def flush(self) -> None:
        try:
            self._file.flush()
        except OSError as exc:
            raise CaptureWriteError(self._path, exc) from None

    def discard(self) -> None:
        """Close the file after a failed write, dropping what it still buffers (the
        buffered writer closes its descriptor even when that last flush fails)."""
        with contextlib.suppress(OSError):
            self._file.close()

    def close(self) -> None:
        """Close the file; what could not be written is lost (the error came already,
        or comes here as a `CaptureWriteError`)."""
        if self._file.closed:
            return
        try:
            self._file.close()
        except OSError as exc:
            raise CaptureWriteError(self._path, exc) from None

