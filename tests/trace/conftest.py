"""Captures made once per session over a link with a large RTT, shared by the trace tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from protolab.netem.privileges import missing
from protolab.netem.profiles import Overrides, build_profile
from protolab.trace.capture import CaptureFiles, capture
from protolab.trace.decode import Decoded, LinkTiming, decode_capture
from protolab.trace.keylog import load_keylog
from protolab.trace.kinds import KINDS

ONE_WAY = "100ms"  # 200 ms RTT: a few ms of processing cannot look like a round trip

Traced = Callable[[str], tuple[CaptureFiles, Decoded]]


def decode_files(files: CaptureFiles) -> Decoded:
    return decode_capture(files.pcap.read_bytes(), load_keylog(files.keylog),
                          LinkTiming(files.rtt_ns, files.up_delay_ns, files.down_delay_ns,
                                     files.dropped_up, files.dropped_down))


@pytest.fixture(scope="session")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Traced:
    """`traced(kind)` captures `kind` once per session and decodes it."""
    cache: dict[str, tuple[CaptureFiles, Decoded]] = {}
    root = tmp_path_factory.mktemp("traces")

    def get(kind: str) -> tuple[CaptureFiles, Decoded]:
        lacking = missing()
        if lacking:
            pytest.skip(f"the emulated link cannot be built here: {'; '.join(lacking)}")
        if kind not in cache:
            profile = build_profile("loopback", Overrides(delay=ONE_WAY))
            files = capture(KINDS[kind], profile, Path(root) / kind)
            cache[kind] = (files, decode_files(files))
        return cache[kind]

    return get
