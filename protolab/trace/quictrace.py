"""QUIC connections (filled in by the QUIC decoding step)."""

from __future__ import annotations

from protolab.trace.keylog import KeyLog
from protolab.trace.packets import Segment
from protolab.trace.steps import Trace


def trace_quic_connections(segments: list[Segment], keylog: KeyLog, up_delay_ns: int,
                           down_delay_ns: int, problems: list[str]) -> list[Trace]:
    return []
