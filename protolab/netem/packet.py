"""Just enough IP header parsing to filter drop rules by protocol and port.

The forwarder sees raw IP packets (TUN with IFF_NO_PI). Only the first fragment of
an IPv4 datagram carries the transport header, so later fragments have no ports.
"""

from __future__ import annotations

from typing import NamedTuple

_ICMPV6 = 58
_ICMP = 1


class PacketMeta(NamedTuple):
    """Transport facts of one IP packet; `protocol` uses IPv4 numbers (ICMPv6 maps to 1)."""

    protocol: int | None
    src_port: int | None
    dst_port: int | None


_UNKNOWN = PacketMeta(None, None, None)


def parse(packet: bytes) -> PacketMeta:
    if not packet:
        return _UNKNOWN
    version = packet[0] >> 4
    if version == 4 and len(packet) >= 20:
        ihl = (packet[0] & 0x0F) * 4
        proto = packet[9]
        fragment_offset = int.from_bytes(packet[6:8], "big") & 0x1FFF
        if fragment_offset:
            return PacketMeta(proto, None, None)
        return _with_ports(packet, proto, ihl)
    if version == 6 and len(packet) >= 40:
        # Extension headers are not walked: the lab's traffic does not use them.
        proto = packet[6]
        if proto == _ICMPV6:
            proto = _ICMP
        return _with_ports(packet, proto, 40)
    return _UNKNOWN


def _with_ports(packet: bytes, proto: int, offset: int) -> PacketMeta:
    if proto in (6, 17) and len(packet) >= offset + 4:
        src = int.from_bytes(packet[offset : offset + 2], "big")
        dst = int.from_bytes(packet[offset + 2 : offset + 4], "big")
        return PacketMeta(proto, src, dst)
    return PacketMeta(proto, None, None)
