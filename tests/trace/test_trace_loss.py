"""A link that drops a packet: the retransmission shows in the ladder and the round-trip
summary says why the handshake took longer than the design's count."""

from __future__ import annotations

from pathlib import Path

import pytest

from protolab.netem.privileges import missing
from protolab.netem.profiles import Overrides, build_profile
from protolab.trace.capture import capture
from protolab.trace.kinds import KINDS
from tests.trace.conftest import decode_files

pytestmark = [pytest.mark.netem, pytest.mark.slow]


def test_lost_syn_ack_is_retransmitted_and_explained(tmp_path: Path) -> None:
    if missing():
        pytest.skip("the emulated link cannot be built here")
    # The first server->client packet is the SYN-ACK: the client's SYN times out (1 s).
    profile = build_profile("loopback", Overrides(delay="50ms", drop=("down:1",)))
    files = capture(KINDS["h1-tls13"], profile, tmp_path)
    assert (files.dropped_up, files.dropped_down) == (0, 1)
    trace = decode_files(files).main
    assert trace is not None
    names = [s.name for s in trace.steps]
    assert names[:3] == ["SYN", "SYN (retransmitted)", "SYN-ACK"]
    rt = trace.round_trips
    assert rt is not None
    assert rt.request_rtts is not None
    assert rt.request_rtts > 2 + 5  # the SYN's 1 s timeout is ten 100 ms round trips
    assert "lost and retransmitted" in rt.explanation
