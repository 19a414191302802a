"""The terminal ladder, --json, and `protolab trace` on captures: its own and brought ones."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from protolab.cli import app
from protolab.trace.render import json_report, ladder, text_report
from tests.trace.conftest import Traced

runner = CliRunner()


@pytest.mark.netem
@pytest.mark.slow
def test_ladder_shows_arrows_times_and_markers(traced: Traced) -> None:
    _, decoded = traced("h1-tls12")
    assert decoded.main is not None
    lines = ladder(decoded.main)
    hello = next(line for line in lines if "ClientHello" in line)
    assert "▶" in hello  # client -> server
    assert "◀" in next(line for line in lines if "ServerHelloDone" in line)
    request = next(line for line in lines if "◆ request leaves" in line)
    assert float(request.split()[1]) == pytest.approx(3, abs=0.25)  # RTT column (test_trace_tcp)
    text = "\n".join(text_report(decoded))
    # The summary line carries the same figure (a fresh checkout's first run compiles
    # modules on the way, so allow the noise the ladder check allows).
    match = re.search(r"request left after ([0-9.]+) RTT", text)
    assert match is not None
    assert float(match.group(1)) == pytest.approx(3, abs=0.25)
    assert "(design: 3)" in text


@pytest.mark.netem
@pytest.mark.slow
def test_json_report_has_every_step_and_field(traced: Traced) -> None:
    _, decoded = traced("h2-tls13")
    doc = json.loads(json.dumps(json_report(decoded)))
    trace = doc["trace"]
    assert trace["negotiated"]["cipher"].startswith("TLS_")
    assert trace["round_trips"]["predicted_request"] == 2
    hello = next(s for s in trace["steps"] if s["name"] == "ClientHello")
    assert hello["direction"] == "client->server"
    assert "TLS 1.3" in hello["fields"]["versions"]
    assert hello["fields"]["alpn"] == ["h2", "http/1.1"] or "h2" in hello["fields"]["alpn"]


@pytest.mark.netem
@pytest.mark.slow
def test_brought_capture_with_and_without_key_log(traced: Traced, tmp_path: Path) -> None:
    files, _ = traced("h2-tls13")
    pcap = tmp_path / "elsewhere.pcap"  # no capture.json beside it: a stranger's capture
    shutil.copy(files.pcap, pcap)
    assert files.keylog is not None
    result = runner.invoke(app, ["trace", "--pcap", str(pcap), "--keylog", str(files.keylog),
                                 "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["trace"]["round_trips"]["rtt_source"] == "handshake"
    assert "CertificateVerify" in [s["name"] for s in doc["trace"]["steps"]]
    result = runner.invoke(app, ["trace", "--pcap", str(pcap)])
    assert result.exit_code == 0, result.output
    assert "Encrypted handshake" in result.output
    assert "no key log" in result.output


def test_trace_needs_a_kind_or_a_capture() -> None:
    result = runner.invoke(app, ["trace"])
    assert result.exit_code != 0
    result = runner.invoke(app, ["trace", "h9"])
    assert "unknown trace kind" in str(result.exception)


def test_not_a_capture_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "x.pcap"
    bad.write_bytes(b"hello, not a capture")
    result = runner.invoke(app, ["trace", "--pcap", str(bad)])
    assert result.exit_code != 0
    assert "not a pcap or pcapng file" in str(result.exception)


def test_svg_sequence_diagram_has_an_arrow_per_packet() -> None:
    import xml.etree.ElementTree as ET

    from protolab.trace.decode import LinkTiming, decode_capture
    from protolab.trace.keylog import parse_keylog
    from protolab.trace.svg import render_svg

    data = Path(__file__).parent / "data"
    decoded = decode_capture((data / "h3-0rtt.pcap").read_bytes(),
                             parse_keylog((data / "h3-0rtt.keylog").read_text()),
                             LinkTiming(100_000_000, 50_000_000, 50_000_000))
    assert decoded.main is not None
    root = ET.fromstring(render_svg(decoded.main))
    ns = "{http://www.w3.org/2000/svg}"
    arrows = [e for e in root.iter(f"{ns}line") if e.get("marker-end")]
    packets = {(s.packet, s.direction) for s in decoded.main.steps}
    assert len(arrows) == len(packets)
    texts = " ".join(e.text or "" for e in root.iter(f"{ns}text"))
    assert "request leaves" in texts
    assert "HTTP/3 HEADERS" in texts
    assert "first response byte after 1.0" in texts


@pytest.mark.netem
@pytest.mark.slow
def test_compare_puts_two_kinds_side_by_side(tmp_path: Path) -> None:
    from protolab.netem.privileges import missing

    if missing():
        pytest.skip("the emulated link cannot be built here")
    result = runner.invoke(app, ["trace", "--compare", "h2-tls12", "h2-tls13", "--delay",
                                 "50ms", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    a, b = doc["a"]["trace"], doc["b"]["trace"]
    assert a["round_trips"]["predicted_request"] == 3
    assert b["round_trips"]["predicted_request"] == 2
    assert b["round_trips"]["request_rtts"] < a["round_trips"]["request_rtts"] - 0.8
    assert (tmp_path / "h2-tls12" / "ladder.svg").exists()
    assert (tmp_path / "h2-tls13" / "trace.json").exists()
