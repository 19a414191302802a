"""The commands as a user runs them: serve until SIGTERM, get with --json, clear errors."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ServeProcess
from tests.helpers import TIMEOUT


def protolab(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "protolab", *args],
        capture_output=True, text=True, timeout=TIMEOUT, check=False, env=env,
    )


def test_serve_prints_urls_and_stops_cleanly_on_sigterm(
    serve_process: Callable[..., ServeProcess],
) -> None:
    server = serve_process()
    assert set(server.urls) == {"h1", "h2", "h3"}
    assert all(url.startswith("https://127.0.0.1:") for url in server.urls.values())
    assert server.ca_file is not None
    assert server.ca_file.exists()
    server.process.send_signal(signal.SIGTERM)
    out, _ = server.process.communicate(timeout=TIMEOUT)
    assert server.process.returncode == 0
    assert "stopped" in out


@pytest.mark.parametrize("protocol", ["h1", "h2", "h3"])
def test_get_json_gives_one_object_per_request(
    serve_process: Callable[..., ServeProcess], protocol: str
) -> None:
    server = serve_process()
    assert server.ca_file is not None
    result = protolab("get", server.urls[protocol] + "bytes/2048", "--proto", protocol,
                      "-n", "3", "--parallel", "3", "--cacert", str(server.ca_file), "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 3
    assert {r["status"] for r in rows} == {200}
    assert all(r["body_verified"] for r in rows)
    assert all(r["ttfb_ms"] > 0 for r in rows)
    assert rows[0]["protocol"] == protocol


def test_get_zero_rtt_table(serve_process: Callable[..., ServeProcess]) -> None:
    server = serve_process("--proto", "h3")
    assert server.ca_file is not None
    result = protolab("get", server.urls["h3"] + "bytes/10", "--proto", "h3", "--zero-rtt",
                      "--cacert", str(server.ca_file))
    assert result.returncode == 0, result.stderr
    assert "yes" in result.stdout  # the second request's 0rtt column


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["serve", "--proto", "h9"], "unknown protocol"),
        (["serve", "--no-tls", "--proto", "h3"], "HTTP/3 needs TLS"),
        (["serve", "--tls-version", "1.1"], "1.2 or 1.3"),
        (["serve", "--quic-cc", "bbr"], "aioquic has no congestion control"),
        (["serve", "--h2-frame", "10"], "max frame size"),
        (["get", "ftp://x/", "--proto", "h1"], "not an http"),
        (["get", "https://127.0.0.1:1/", "--proto", "h4"], "unknown protocol"),
        (["bench", "no-such-suite"], "no suite 'no-such-suite'"),
        (["netem", "up", "--profile", "moon"], "unknown link profile 'moon'"),
        # Square brackets in a message are text, not rich markup (a MarkupError before).
        (["netem", "up", "--drop", "sideways:1"], "--drop 'sideways:1' is not DIRECTION:N[,N...]"),
        (["netem", "up", "--delay", "[bold]5ms"], "[bold]5ms"),
        (["claims", "--suite", "nope"], "unknown bundled suite(s) ['nope']"),
        # Where output goes is checked before a link or a server exists.
        (["netem", "up", "--delay", "5ms", "--pcap", "/nonexistent/d/x.pcap"],
         "directory /nonexistent/d does not exist"),
        (["netem", "run", "--delay", "5ms", "--pcap", "/tmp", "--", "true"], "is a directory"),
        (["bench", "demo", "--out", "/nonexistent/x/y"], "directory /nonexistent/x does not"),
        (["claims", "--out", "/etc/passwd"], "--out /etc/passwd is not a directory"),
        (["trace", "h1-clear", "--out", "/proc/x"], "cannot create the capture folder"),
        (["bench", "demo", "--db", "/nonexistent/protolab/x.db"],
         "directory /nonexistent does not exist"),
    ],
)
def test_bad_options_give_one_clear_line(args: list[str], words: str) -> None:
    result = protolab(*args)
    assert result.returncode == 2
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not Path("/nonexistent").exists()  # a mistyped --db makes no directory tree


def test_a_suite_file_with_a_mistake_gets_one_line(tmp_path: Path) -> None:
    suite = tmp_path / "mine.toml"
    suite.write_text('name = "mine"\nrepetitons = 3\n[[variant]]\nprotocol = "h2"\n')
    result = protolab("bench", str(suite), "--db", str(tmp_path / "lab.db"))
    assert result.returncode == 2
    assert "unknown key(s) ['repetitons']" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "lab.db").exists()  # nothing was started or written


def test_a_suite_message_keeps_its_brackets(tmp_path: Path) -> None:
    suite = tmp_path / "empty.toml"
    suite.write_text('name = "empty"\n')
    result = protolab("bench", str(suite), "--db", str(tmp_path / "lab.db"))
    assert result.returncode == 2
    assert "needs at least one [[variant]] table" in result.stderr


def test_get_from_nothing_is_a_typed_failure() -> None:
    # A bound socket that does not listen: its port refuses connections, and stays ours.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        result = protolab("get", f"http://127.0.0.1:{port}/bytes/1", "--proto", "h1", "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"] == "connect_refused"
