"""Bad input at the CLI's edges, one test per class a user hit: numbers that are NaN,
infinite or huge; counts without a cap; run ids no store can hold; ports that overflow
past 65535; text read as emoji; a git revision that is not protolab's; a TLS version
gRPC cannot pin. Each answer is one `error:` line and exit 2 (or, for gRPC's TLS
version, one notice), never a traceback, a hang or silence."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from protolab import registry
from protolab.store import ResultsStore, manifest
from protolab.store.manifest import _git_revision
from servers.run import LISTENERS
from tests.bench.test_results_cli import one_clear_line
from tests.bench.test_store import record
from tests.conftest import ServeProcess
from tests.test_cli import protolab

NOWHERE = "https://127.0.0.1:1/"  # never contacted: input is checked first
HUGE_RUN = str(10**20)  # past SQLite's 64-bit INTEGER


def wide(*args: str) -> subprocess.CompletedProcess[str]:
    """`protolab ARGS` on a 200-column terminal, so help lines are not wrapped."""
    return protolab(*args, env={**os.environ, "COLUMNS": "200"})


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["serve", "--idle-timeout", "nan"], "--idle-timeout nan s is not a finite number: "
         "allowed 0.001..86400 s"),
        (["serve", "--idle-timeout", "inf"], "--idle-timeout inf s is not a finite number"),
        (["serve", "--idle-timeout", "1e300"], "--idle-timeout 1e+300 s is out of range: "
         "allowed 0.001..86400 s"),
        (["serve", "--quic-max-data", str(2**62)], "allowed 1024..2147483647 bytes"),
        (["netem", "check", "--seconds", "nan"], "--seconds nan s is not a finite number: "
         "allowed 0.5..60 s"),
        (["trace", "--pcap", "/nonexistent.pcap", "--rtt", "nan"], "--rtt nan ms is not a "
         "finite number"),
        (["worker", "--scheduler", "tcp://127.0.0.1:1", "--timeout", "inf"], "--timeout"),
    ],
)
def test_numbers_must_be_finite_and_in_their_stated_range(args: list[str], words: str) -> None:
    assert words in one_clear_line(protolab(*args))


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["get", "-n", "10000000000", NOWHERE], "-n 10000000000 is out of range: allowed "
         "1..100000"),
        (["get", "--parallel", "99999", NOWHERE], "allowed 1..1000"),
        (["get", "--connections", "100000", NOWHERE, "--proto", "h1"], "1..256"),
        (["bench", "demo", "--repeat", "99999999999"], "--repeat 99999999999 is out of "
         "range: allowed 1..1000"),
        (["bench", "demo", "--retries", "10000"], "--retries 10000 is out of range"),
        (["netem", "check", "--probes", "5"], "--probes 5 is out of range: allowed 10..100000"),
        (["netem", "run", "--server-wait", "0", "--", "true"], "allowed 1..65535"),
    ],
)
def test_counts_have_a_cap_named_in_one_line(args: list[str], words: str) -> None:
    assert words in one_clear_line(protolab(*args))


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished run, of a suite whose name holds an emoji code."""
    path = tmp_path_factory.mktemp("results") / "lab.db"
    with ResultsStore(path) as store:
        run = store.begin_run("a:x:b", manifest())
        cell = store.add_cell(run, 0, {"protocol": "h2", "repetition": 0})
        store.add_samples(cell, [record(i, ttfb_ms=10.0 + i, total_ms=12.0 + i)
                                 for i in range(3)], repetition=0, warmup=False)
        store.finish_cell(cell, "ok")
        store.finish_run(run, "complete")
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["results", "show", HUGE_RUN],
        ["results", "export", HUGE_RUN],
        ["results", "compare", "1", HUGE_RUN],
        ["report", HUGE_RUN, "--out", "{tmp}/r.html"],
        ["report", "1", "--baseline", HUGE_RUN, "--out", "{tmp}/r.html"],
    ],
    ids=["show", "export", "compare", "report", "report-baseline"],
)
def test_a_run_id_past_64_bits_is_no_run(db: Path, tmp_path: Path, args: list[str]) -> None:
    line = one_clear_line(protolab(*(a.format(tmp=tmp_path) for a in args), "--db", str(db)))
    assert f"no run {HUGE_RUN}" in line
    assert not (tmp_path / "r.html").exists()


def test_ports_past_65535_are_refused_naming_each_protocol() -> None:
    offsets = {p: LISTENERS[registry.get(p).listener].offset for p in ("ws", "grpc")}
    line = one_clear_line(protolab("serve", "--port", "65535", "--proto", "h1,ws,grpc"))
    for proto, offset in offsets.items():
        assert f"{proto} needs --port <= {65535 - offset}" in line
    line = one_clear_line(protolab("serve", "--port", str(65536 - offsets["grpc"]),
                                   "--proto", "grpc"))
    assert f"grpc needs --port <= {65535 - offsets['grpc']}" in line


@pytest.mark.parametrize("command", [["netem", "up"], ["trace"]])
def test_help_shows_addresses_as_written(command: list[str]) -> None:
    result = wide(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "fd00:77:0:X::1" in result.stdout
    assert "\N{CROSS MARK}" not in result.stdout


@pytest.mark.parametrize("args", [["results", "list"], ["results", "show", "1"]])
def test_a_suite_name_is_printed_as_written(db: Path, args: list[str]) -> None:
    result = wide(*args, "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert "a:x:b" in result.stdout
    assert "\N{CROSS MARK}" not in result.stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_a_copy_inside_another_checkout_has_no_revision(tmp_path: Path) -> None:
    outer = tmp_path / "other-project"
    copy = outer / "vendor" / "protolab"
    copy.mkdir(parents=True)
    (copy / "pyproject.toml").write_text('[project]\nname = "protolab"\n')
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    for argv in (["git", "init", "-q"], ["git", "add", "."],
                 ["git", "commit", "-q", "-m", "outer"]):
        subprocess.run(argv, cwd=outer, check=True, env=env, capture_output=True)
    assert _git_revision(copy) == {"revision": None, "dirty": None,
                                   "note": "not a git checkout"}
    # The outer project's own root is a checkout of its own: it has a revision.
    (outer / "pyproject.toml").write_text('[project]\nname = "other"\n')
    assert _git_revision(outer)["revision"] is not None


def test_grpc_variants_cannot_pin_a_tls_version(tmp_path: Path) -> None:
    knobs = {**registry.KNOB_DEFAULTS, "tls_version": "1.2"}
    for name in ("grpc", "grpc-stub"):
        assert any("grpcio negotiates TLS 1.2-1.3 itself" in p
                   for p in registry.get(name).validate(knobs))
    assert registry.get("h2").validate(knobs) == []
    suite = tmp_path / "grpc12.toml"
    suite.write_text('name = "grpc12"\n[[variant]]\nprotocol = "grpc"\ntls_version = "1.2"\n')
    line = one_clear_line(protolab("bench", str(suite), "--db", str(tmp_path / "lab.db")))
    assert "grpc: tls_version 1.2 cannot be pinned" in line
    assert not (tmp_path / "lab.db").exists()


def test_serve_says_tls_version_does_not_hold_for_grpc(
    serve_process: Callable[..., ServeProcess],
) -> None:
    server = serve_process("--proto", "h1,h2,ws,grpc", "--tls-version", "1.2")
    assert set(server.urls) == {"h1", "h2", "ws", "grpc"}
    notices = [line for line in server.log.read_text().splitlines() if "grpcio" in line]
    assert notices == ["gRPC: grpcio negotiates TLS 1.2-1.3 itself; --tls-version applies "
                       "to h1, h2, ws"]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, 0.0, 1e300])
def test_a_server_document_with_a_non_finite_timeout_is_refused(value: float) -> None:
    # The server process takes its settings as JSON without the CLI's checks.
    from protolab.errors import ConfigError
    from servers.common import ServerConfig, WsSettings

    with pytest.raises(ConfigError, match="idle timeout"):
        ServerConfig(idle_timeout=value, certs=None, protocols=("h1",))
    with pytest.raises(ConfigError, match="ping interval"):
        WsSettings(ping_interval=value)


def test_a_key_log_a_client_cannot_write_is_refused_not_silently_empty(tmp_path: Path) -> None:
    # grpcio cannot export TLS secrets: `get --keylog` over grpcs says so before
    # connecting instead of exiting 0 with no file; a capture makes no empty key log.
    keylog = tmp_path / "keys.log"
    result = protolab("get", "--keylog", str(keylog), "grpcs://127.0.0.1:9/Unary?size=100")
    assert result.returncode == 2
    assert "--keylog cannot be honoured" in one_clear_line(result)
    assert not keylog.exists()
    assert [p.name for p in registry.PROTOCOLS.values() if not p.capabilities.key_log] == [
        "grpc", "grpc-stub"]
