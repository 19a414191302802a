"""Charts: files written, non-empty, real PNG/SVG; drawn from synthetic, seeded data."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from protolab.core.record import RequestRecord
from protolab.core.stats import summarize
from protolab.report.charts import (
    SeriesPoint,
    latency_cdf,
    percentile_lines,
    points_from_summaries,
    ttfb_vs_rtt,
    waterfall,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MS = 1_000_000
LINK = "50 ms RTT, 10 Mbit/s, 1% loss"


def check_files(paths: list[Path]) -> None:
    assert [p.suffix for p in paths] == [".png", ".svg"]
    png, svg = paths
    assert png.read_bytes().startswith(PNG_MAGIC)
    assert png.stat().st_size > 5_000
    root = ET.fromstring(svg.read_bytes())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"


def test_latency_cdf(tmp_path: Path) -> None:
    rng = random.Random(1)
    series = {
        "h2": [50 + rng.expovariate(1 / 10) for _ in range(500)],
        "h3": [40 + rng.expovariate(1 / 5) for _ in range(500)],
    }
    paths = latency_cdf(series, tmp_path / "charts" / "cdf", link=LINK, workload="10 × 100 KB")
    check_files(paths)
    assert paths[0] == tmp_path / "charts" / "cdf.png"
    svg = paths[1].read_text()
    assert "latency (ms)" in svg  # axis label with its unit
    assert "10 × 100 KB" in svg  # title names the workload
    assert LINK in svg
    assert "Date" not in svg.split("</metadata>")[0]  # reproducible file


def test_percentile_lines_with_ci_bands(tmp_path: Path) -> None:
    rng = random.Random(2)
    losses = [0.0, 0.5, 1.0, 2.0, 5.0]
    series: dict[str, list[SeriesPoint]] = {}
    for protocol, factor in (("h2", 1.0), ("h3", 0.6)):
        pairs = [(loss, summarize([100 * (1 + factor * loss) + rng.expovariate(0.1)
                                   for _ in range(200)])) for loss in losses]
        series[f"{protocol} p50"] = points_from_summaries(pairs, "p50")
        series[f"{protocol} p99"] = points_from_summaries(pairs, "p99")
    assert series["h2 p50"][0].low is not None
    assert series["h2 p99"][0].low is None
    paths = percentile_lines(series, tmp_path / "loss", parameter="loss", parameter_unit="%",
                             link="50 ms RTT, 10 Mbit/s", workload="10 × 100 KB")
    check_files(paths)
    svg = paths[1].read_text()
    assert "loss (%)" in svg
    assert "latency (ms)" in svg


def test_ttfb_vs_rtt_with_fitted_and_theoretical_slopes(tmp_path: Path) -> None:
    rng = random.Random(3)
    series = {}
    for label, rtts in (("TLS 1.2", 4), ("TLS 1.3", 3), ("HTTP/3", 2), ("HTTP/3 0-RTT", 1)):
        x = [r for r in (10.0, 50.0, 100.0, 200.0) for _ in range(5)]
        series[label] = (x, [rtts * r + 1 + rng.gauss(0, 0.5) for r in x])
    paths = ttfb_vs_rtt(series, tmp_path / "ttfb", link="RTT swept, no loss",
                        workload="tiny GET, fresh connection")
    check_files(paths)
    svg = paths[1].read_text()
    assert "link RTT (ms)" in svg
    assert "time to first byte (ms)" in svg
    assert "4 RTT (TLS 1.2)" in svg
    assert "TLS 1.3: 3.00" in svg  # fitted slope in the legend


def stream_records(hol_stream: int) -> list[RequestRecord]:
    """Ten parallel 100 KB streams; one stalls for a retransmission (a HOL picture)."""
    start = 5_000 * MS
    records = []
    for i in range(10):
        first = start + 100 * MS
        arrivals = []
        t = first
        for chunk in range(8):
            t += 8 * MS + (60 * MS if i == hol_stream and chunk == 3 else 0)
            arrivals.append((t, 12_800))
        records.append(RequestRecord(
            protocol="h3", method="GET", path="/bytes/102400", start_ns=start + i * MS,
            connection_id=1, new_connection=i == 0,
            conn_start_ns=start - 50 * MS if i == 0 else None,
            handshake_ns=start - 1 * MS if i == 0 else None,
            first_byte_ns=first, done_ns=t, status=200, stream_id=4 * i,
            body_bytes=102_400, body_verified=True, arrivals=tuple(arrivals),
        ))
    records.append(RequestRecord(
        protocol="h3", method="GET", path="/bytes/10", start_ns=start + 20 * MS,
        connection_id=1, new_connection=False, error="timeout", error_detail="no answer",
    ))
    return records


def test_waterfall_marks_each_arrival(tmp_path: Path) -> None:
    paths = waterfall(stream_records(hol_stream=3), tmp_path / "waterfall",
                      link=LINK, workload="10 × 100 KB, round-robin")
    check_files(paths)
    svg = paths[1].read_text()
    assert "time since the first request started (ms)" in svg
    assert "h3 c1 s12 /bytes/102400" in svg
    assert "[timeout]" in svg


def test_formats_and_bad_input(tmp_path: Path) -> None:
    only_svg = latency_cdf({"h1": [1.0, 2.0]}, tmp_path / "a.png", link="l", workload="w",
                           formats=("svg",))
    assert only_svg == [tmp_path / "a.svg"]
    with pytest.raises(ValueError, match="no values"):
        latency_cdf({"h1": []}, tmp_path / "b", link="l", workload="w")
    with pytest.raises(ValueError, match="png and svg"):
        latency_cdf({"h1": [1.0]}, tmp_path / "c", link="l", workload="w", formats=("pdf",))
    with pytest.raises(ValueError, match="no records"):
        waterfall([], tmp_path / "d", link="l", workload="w")
