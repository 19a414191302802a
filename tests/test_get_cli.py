"""`protolab get` at its edges, as a user runs it: bad URLs and files get one clear line
and exit 2 with nothing created; a server's refusal is printed and exits 1; `-n N` ends
with one aggregate line; failures are typed and quiet (no library log lines)."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from protolab.certs import ensure_certs
from protolab.core.record import RequestRecord
from protolab.report.records_view import aggregate_line, answer_lines
from tests.conftest import ServeProcess
from tests.test_cli import protolab

NOWHERE = "https://127.0.0.1:1/"  # never contacted: input is checked first


# {tmp} is the test's directory, holding junk.pem (not PEM) and a-file (a regular file).
BAD_INPUT = [
    pytest.param(["https://[::1/health"], "malformed URL 'https://[::1/health': Invalid IPv6 URL",
                 id="ipv6-bracket"),
    pytest.param(["https://host:99999/"], "Port out of range", id="port-range"),
    pytest.param(["https://:80/"], "names no host", id="no-host"),
    pytest.param(["http://exa mple/"], "'exa mple' is not a host name or IP address",
                 id="space-in-host"),
    pytest.param(["https://host:0/"], "port 0", id="port-0"),
    pytest.param(["https://256.1.1.1/"], "not a valid IPv4 address", id="ipv4-range"),
    pytest.param(["http://host/a b"], "percent-encode it (%20)", id="space-in-path"),
    pytest.param(["http://user:pw@host/"], "carries credentials", id="credentials"),
    pytest.param([NOWHERE, "--cacert", "{tmp}/missing.pem"], "--cacert {tmp}/missing.pem does "
                 "not exist", id="ca-missing"),
    pytest.param([NOWHERE, "--cacert", "{tmp}/junk.pem"], "holds no PEM certificate",
                 id="ca-not-pem"),
    pytest.param([NOWHERE, "--cacert", "{tmp}"], "--cacert {tmp} is a directory",
                 id="ca-directory"),
    pytest.param([NOWHERE, "--keylog", "{tmp}"], "--keylog {tmp} is a directory",
                 id="keylog-directory"),
    pytest.param([NOWHERE, "--keylog", "{tmp}/no-such-dir/keys.log"],
                 "directory {tmp}/no-such-dir does not exist", id="keylog-missing-parent"),
    pytest.param([NOWHERE, "--keylog", "{tmp}/a-file/keys.log"], "{tmp}/a-file is not a "
                 "directory", id="keylog-parent-is-file"),
]


@pytest.mark.parametrize(("args", "words"), BAD_INPUT)
def test_bad_input_gets_one_line_and_exit_2(
    tmp_path: Path, args: list[str], words: str
) -> None:
    (tmp_path / "junk.pem").write_text("this is not a certificate\n")
    (tmp_path / "a-file").write_text("")
    before = sorted(tmp_path.rglob("*"))
    result = protolab("get", *(a.format(tmp=tmp_path) for a in args), "--proto", "h1")
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert words.format(tmp=tmp_path) in result.stderr
    assert result.stdout == ""
    assert sorted(tmp_path.rglob("*")) == before  # nothing half-created


@pytest.mark.parametrize("bad", [["https://[::1/"], [NOWHERE, "--cacert", "/nonexistent.pem"]],
                         ids=["bad-url", "bad-cacert"])
def test_a_rejected_command_creates_no_key_log(tmp_path: Path, bad: list[str]) -> None:
    keylog = tmp_path / "keys.log"
    result = protolab("get", *bad, "--keylog", str(keylog))
    assert result.returncode == 2
    assert not keylog.exists()


def test_http_refusal_is_printed_and_exits_1(
    serve_process: Callable[..., ServeProcess],
) -> None:
    server = serve_process("--proto", "h1,h2,h3,ws")
    ca = ["--cacert", str(server.ca_file)]
    for protocol in ("h1", "h2", "h3"):
        result = protolab("get", server.urls[protocol] + "no/such/path", "--proto", protocol,
                          *ca)
        assert result.returncode == 1, (protocol, result.stdout, result.stderr)
        assert "#0: server answered 404 Not Found" in result.stdout, protocol
    ws = protolab("get", server.urls["ws"] + "nothere", *ca)
    assert ws.returncode == 1
    assert "#0: upgrade_rejected: server answered 404 Not Found to the upgrade of /nothere" \
        in ws.stdout
    assert "no WebSocket endpoint at /nothere" in ws.stdout  # the server's own words


def test_get_n_ends_with_one_aggregate_line(serve_process: Callable[..., ServeProcess]) -> None:
    server = serve_process("--proto", "h2")
    result = protolab("get", server.urls["h2"] + "bytes/1000", "--proto", "h2", "-n", "20",
                      "--parallel", "5", "--cacert", str(server.ca_file))
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"20 requests: 20 ok, 0 failed; [\d.]+ req/s over [\d.]+ s; "
                        r"total p50 [\d.]+ ms, p99 [\d.]+ ms", last), last


@pytest.mark.parametrize("scheme", ["https-h3", "grpcs"])
def test_closed_port_answers_at_once_over_udp_and_grpc(scheme: str) -> None:
    # Before: h3 and gRPC waited ~60 s for a port that refuses (h1/h2 answered at once).
    with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", 0))
        udp.bind(("127.0.0.1", 0))
        udp.connect(udp.getsockname())  # hears only itself: others get ICMP unreachable
        if scheme == "grpcs":
            args = [f"grpcs://127.0.0.1:{tcp.getsockname()[1]}/Unary?size=1"]
        else:
            args = [f"https://127.0.0.1:{udp.getsockname()[1]}/", "--proto", "h3"]
        result = protolab("get", *args, "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"] == "connect_refused"
    assert result.stderr == ""


def test_untrusted_ca_is_tls_verify_and_quiet_on_every_protocol(
    serve_process: Callable[..., ServeProcess], tmp_path: Path
) -> None:
    server = serve_process("--proto", "h1,h2,h3,ws,grpc")
    foreign = ensure_certs(tmp_path / "foreign").ca_file
    paths = {"h1": "bytes/10", "h2": "bytes/10", "h3": "bytes/10", "ws": "echo",
             "grpc": "Unary?size=1"}
    for protocol, url in server.urls.items():
        result = protolab("get", url + paths[protocol], "--proto",
                          protocol if protocol in ("h1", "h2", "h3") else "h2",
                          "--cacert", str(foreign), "--json")
        assert result.returncode == 1, (protocol, result.stderr)
        record = json.loads(result.stdout)
        assert record["error"] == "tls_verify", (protocol, record["error_detail"])
        # No C-core handshake lines (gRPC), no aioquic warning or loop traceback (h3).
        assert result.stderr == "", (protocol, result.stderr)


def _record(i: int, total_ms: float | None, *, status: int | None = 200,
            error: str | None = None) -> RequestRecord:
    return RequestRecord(
        protocol="h2", method="GET", path="/", start_ns=i * 10**9, connection_id=1,
        new_connection=False, status=status, error=error,
        error_detail="127.0.0.1:1 refused" if error else None,
        done_ns=None if total_ms is None else i * 10**9 + int(total_ms * 1e6),
    )


def test_aggregate_line_counts_rates_and_percentiles() -> None:
    records = [_record(i, float(i + 1)) for i in range(100)]  # 1..100 ms
    records += [_record(100, None, status=None, error="connect_refused"),
                _record(101, 5.0, status=503)]
    line = aggregate_line(records, wall_ns=2 * 10**9)
    found = re.fullmatch(r"102 requests: 100 ok, 2 failed; 51\.0 req/s over 2\.000 s; "
                         r"total p50 ([\d.]+) ms, p99 ([\d.]+) ms", line)
    assert found, line
    assert float(found[1]) == pytest.approx(50.0, rel=0.01)
    assert float(found[2]) == pytest.approx(99.0, rel=0.01)
    assert aggregate_line([_record(0, None, status=None, error="timeout")], 10**9).endswith(
        "p50 -, p99 - (none succeeded)")


def test_answer_lines_group_by_kind_and_name_the_first() -> None:
    records = [_record(0, 1.0), _record(1, None, status=None, error="connect_refused"),
               _record(2, None, status=None, error="connect_refused"),
               _record(3, 2.0, status=404)]
    assert answer_lines(records) == [
        "2 requests (#1 ...): connect_refused: 127.0.0.1:1 refused",
        "#3: server answered 404 Not Found",
    ]
