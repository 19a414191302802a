"""What a transport decoder hands the attribution: drops and pieces, before the
application's times are known."""

from __future__ import annotations

from dataclasses import dataclass, field

from protolab.hol.intervals import FirstArrivals
from protolab.hol.model import Drop


@dataclass(frozen=True)
class RawPiece:
    stream_id: int
    offset: int  # in the response body
    length: int
    link_ns: int
    readable_ns: int
    drops: tuple[int, ...]  # drops whose data held it (empty: nothing dropped held it)


@dataclass
class Transfer:
    transport: str
    drops: list[Drop] = field(default_factory=list)
    pieces: list[RawPiece] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def held(arrivals: FirstArrivals, start: int, link_ns: int) -> tuple[int, tuple[int, int]]:
    """When bytes from `start` on, which crossed at `link_ns`, could be handed over in
    order, and the byte range that held them ((0, 0) when nothing did)."""
    binding = arrivals.latest_before(start)
    if binding is None or binding.at_ns <= link_ns:
        return link_ns, (0, 0)
    return binding.at_ns, (binding.start, binding.end)
