"""Link layer -> IPv4/IPv6 -> TCP segments and UDP datagrams (what the tracer decodes).

Hand-written: these headers are fixed layouts a few lines each. Fragments, tunnels and
IPv6 extension headers other than the common skippable ones are not followed.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from protolab.trace.pcapfile import Frame

LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW = 0, 1, 101
LINKTYPE_LINUX_SLL, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL2 = 113, 228, 229, 276

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10


@dataclass(frozen=True)
class Segment:
    """A TCP segment or UDP datagram with the addresses and the time it was captured."""

    index: int  # frame number in the capture, from 0
    ts_ns: int
    transport: str  # "tcp" or "udp"
    src: str
    sport: int
    dst: str
    dport: int
    ip_len: int  # bytes of the IP packet
    payload: bytes
    seq: int = 0  # TCP only below
    ack: int = 0
    flags: int = 0
    window: int = 0

    @property
    def flow(self) -> tuple[str, int, str, int]:
        return (self.src, self.sport, self.dst, self.dport)

    def flag_names(self) -> str:
        names = [n for bit, n in ((TCP_SYN, "SYN"), (TCP_FIN, "FIN"), (TCP_RST, "RST"),
                                  (TCP_PSH, "PSH"), (TCP_ACK, "ACK")) if self.flags & bit]
        return ",".join(names)


def ip_payload(frame: Frame) -> bytes | None:
    """The IP packet inside a frame, or None for link types and ethertypes not followed."""
    data, lt = frame.data, frame.linktype
    if lt in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        return data
    if lt == LINKTYPE_ETHERNET:
        pos, ethertype = 12, 0
        while pos + 2 <= len(data):
            ethertype = struct.unpack_from("!H", data, pos)[0]
            if ethertype in (0x8100, 0x88A8):  # VLAN tags
                pos += 4
                continue
            break
        return data[pos + 2:] if ethertype in (0x0800, 0x86DD) else None
    if lt == LINKTYPE_NULL:
        return data[4:] if len(data) > 4 else None
    if lt == LINKTYPE_LINUX_SLL:
        return data[16:] if len(data) > 16 and data[14:16] in (b"\x08\x00", b"\x86\xdd") else None
    if lt == LINKTYPE_LINUX_SLL2:
        return data[20:] if len(data) > 20 and data[0:2] in (b"\x08\x00", b"\x86\xdd") else None
    return None


def parse_frame(index: int, frame: Frame) -> Segment | None:
    """The TCP segment or UDP datagram a frame carries, or None (other traffic, damage)."""
    packet = ip_payload(frame)
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4 and len(packet) >= 20:
        ihl = (packet[0] & 0x0F) * 4
        total = struct.unpack_from("!H", packet, 2)[0]
        if ihl < 20 or struct.unpack_from("!H", packet, 6)[0] & 0x3FFF:  # bad or fragment
            return None
        proto = packet[9]
        src = str(ipaddress.IPv4Address(packet[12:16]))
        dst = str(ipaddress.IPv4Address(packet[16:20]))
        body = packet[ihl:min(total, len(packet))] if total >= ihl else b""
        ip_len = max(total, len(packet))
    elif version == 6 and len(packet) >= 40:
        proto = packet[6]
        src = str(ipaddress.IPv6Address(packet[8:24]))
        dst = str(ipaddress.IPv6Address(packet[24:40]))
        body = packet[40:40 + struct.unpack_from("!H", packet, 4)[0]]
        ip_len = 40 + len(body)
        while proto in (0, 43, 60) and len(body) >= 8:  # hop-by-hop, routing, destination
            proto, body = body[0], body[(body[1] + 1) * 8:]
    else:
        return None
    if proto == 6 and len(body) >= 20:
        sport, dport, seq, ack, off_flags, window = struct.unpack_from("!HHIIHH", body)
        offset = (off_flags >> 12) * 4
        if offset < 20 or offset > len(body):
            return None
        return Segment(index, frame.ts_ns, "tcp", src, sport, dst, dport, ip_len,
                       body[offset:], seq, ack, off_flags & 0x3F, window)
    if proto == 17 and len(body) >= 8:
        sport, dport, length = struct.unpack_from("!HHH", body)
        end = length if 8 <= length <= len(body) else len(body)
        return Segment(index, frame.ts_ns, "udp", src, sport, dst, dport, ip_len, body[8:end])
    return None
