"""Suites can ask for captures; transport-hol does, and judges HOL claims."""

from __future__ import annotations

import pytest

from protolab.bench.claims import METRICS, CellView, evaluate
from protolab.bench.suite import load_suite, parse_suite
from protolab.errors import ConfigError
from protolab.hol.model import StreamHol

MS = 1_000_000


def stream(others_ms: float, *, own_ms: float = 0.0, lost: bool = False) -> StreamHol:
    return StreamHol(1, 1000, 1, int(own_ms * MS), int(others_ms * MS), 0, 0,
                     int(own_ms * MS), int(others_ms * MS), lost, not lost, lost)


def test_capture_is_a_suite_key() -> None:
    base = {"variant": [{"protocol": "h2"}]}
    assert parse_suite(base).capture is False
    assert parse_suite({**base, "capture": True}).capture is True
    with pytest.raises(ConfigError, match="capture"):
        parse_suite({**base, "capture": "yes"})


def test_transport_hol_captures_and_declares_hol_claims() -> None:
    suite = load_suite("transport-hol")
    assert suite.capture
    metrics = {c.metric for c in suite.claims}
    assert {"hol_others_rtts", "hol_own_rtts", "hol_others"} <= metrics <= set(METRICS)


def test_hol_claims_judge_per_stream_values() -> None:
    suite = load_suite("transport-hol")
    point = {"delay": "25ms", "rate": "10mbit", "queue": "100", "drop": "down:40"}
    h2 = CellView("h2-rr", point, 50.0, [], tuple(
        [stream(48.0), stream(47.0), stream(49.0), stream(0.0, own_ms=50.0, lost=True)] * 3))
    h3 = CellView("h3-rr", point, 50.0, [], tuple(
        [stream(0.0), stream(0.2), stream(0.0), stream(0.0, own_ms=60.0, lost=True)] * 3))
    verdicts = {v.claim: v.verdict for v in evaluate(suite.claims, [h2, h3])}
    assert verdicts["h2-drop-stalls-other-streams"] == "holds"
    assert verdicts["h3-drop-spares-other-streams"] == "holds"
    assert verdicts["h3-drop-stalls-own-stream"] == "holds"
    assert verdicts["h2-drop-stalls-own-stream"] == "holds"
    assert verdicts["h3-less-hol-from-others-loss"] == "holds"
