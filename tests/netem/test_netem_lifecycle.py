"""Teardown after crashes, refusals before anything exists, and the lab's own clients."""

from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from protolab.core.procfs import process_start
from protolab.errors import ConfigError, LabError
from protolab.labserver import read_banner
from protolab.netem import namespaces, state
from protolab.netem.link import EmulatedLink
from protolab.netem.profiles import build_profile
from tests.netem.owners import finish as _finish
from tests.netem.owners import start_owner as _start_owner

LinkFactory = Callable[..., EmulatedLink]
TIMEOUT = 30.0

@pytest.mark.netem
def test_leftovers_of_a_sigkilled_run_are_removed_at_next_start(
    make_link: LinkFactory, created_namespaces: set[str],
) -> None:
    name = f"killed{secrets.token_hex(3)}"
    proc, forwarder = _start_owner(name, created_namespaces)
    os.kill(forwarder, signal.SIGKILL)
    os.kill(proc.pid, signal.SIGKILL)
    _finish(proc)
    assert f"plab-{name}-c" in namespaces.list_netns()
    assert (state.state_dir() / f"{name}.json").exists()

    make_link()  # the next start recognises the dead owner and cleans up

    assert f"plab-{name}-c" not in namespaces.list_netns()
    assert f"plab-{name}-s" not in namespaces.list_netns()
    assert not (state.state_dir() / f"{name}.json").exists()


@pytest.mark.netem
def test_forwarder_exits_when_its_owner_dies(
    netem_available: None, created_namespaces: set[str],
) -> None:
    name = f"orphan{secrets.token_hex(3)}"
    proc, forwarder = _start_owner(name, created_namespaces)
    start = process_start(forwarder)
    os.kill(proc.pid, signal.SIGKILL)
    _finish(proc)
    # The control socket's EOF is the forwarder's signal to leave: wait for that exit.
    pidfd = os.pidfd_open(forwarder)
    try:
        readable, _, _ = select.select([pidfd], [], [], TIMEOUT)
        assert readable, "the forwarder outlived its owner"
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)
    assert process_start(forwarder) != start or _is_zombie(forwarder)
    removed = state.cleanup_leftovers(only=name)
    assert name in removed


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.netem
def test_killed_forwarder_cuts_the_link_and_close_still_cleans(make_link: LinkFactory) -> None:
    link = make_link()
    assert link.forwarder_pid is not None
    os.kill(link.forwarder_pid, signal.SIGKILL)
    assert link._forwarder is not None
    link._forwarder.wait(TIMEOUT)
    assert not link.alive()
    with pytest.raises(LabError, match="exited|unreachable"):
        link.counters()
    link.close()
    assert link.client_ns not in namespaces.list_netns()
    assert link.server_ns not in namespaces.list_netns()


@pytest.mark.netem
def test_a_taken_name_is_refused_without_touching_the_existing_link(
    make_link: LinkFactory,
) -> None:
    name = f"dup{secrets.token_hex(3)}"
    first = make_link(name=name)
    with pytest.raises(ConfigError, match="already exists"):
        make_link(name=name)
    assert first.alive()
    assert first.client_ns in namespaces.list_netns()


def test_bad_link_name_is_refused_before_anything_exists() -> None:
    with pytest.raises(ConfigError, match="not usable"):
        EmulatedLink(build_profile("loopback"), name="Bad Name!")


def _protolab(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = subprocess.run(  # type: ignore[call-overload]
        [sys.executable, "-m", "protolab", *args], capture_output=True, text=True,
        timeout=TIMEOUT, check=False, **kwargs)
    return result


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--profile", "5g"], "unknown link profile"),
        (["--delay", "-5ms"], "must not be negative"),
        (["--loss", "150%"], "0..100%"),
        (["--drop", "down:1:icmp/80"], "can never match"),
        (["--burst", "1", "--loss", "60%"], "cannot be reached"),
    ],
)
def test_cli_refuses_bad_input_with_a_clear_error(args: list[str], message: str) -> None:
    # Profiles are validated before EmulatedLink exists, so nothing can be half-built.
    result = _protolab("netem", "check", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to an unprivileged user")
def test_unprivileged_user_gets_a_privilege_error_naming_what_is_missing() -> None:
    probe = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
         "-c", "import protolab.netem.privileges"],
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )
    if probe.returncode != 0:
        # e.g. a checkout under a 0700 directory (mktemp -d, /root): nobody can import it.
        pytest.skip("this checkout or its Python is not readable by an unprivileged user")
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
         "-c", "from protolab.netem import privileges; privileges.require()"],
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )
    assert result.returncode != 0
    assert "PrivilegeError" in result.stderr
    assert "CAP_NET_ADMIN" in result.stderr


def _serve(link: EmulatedLink, cert_dir: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = link.popen(
        "server",
        [sys.executable, "-m", "protolab", "serve", "--host", link.server_addr, "--port", "0",
         "--cert-dir", str(cert_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    banner = read_banner(proc.stdout or ())
    if banner is None:
        raise AssertionError("protolab serve did not become ready in the server namespace")
    return proc, banner.urls


@pytest.mark.netem
@pytest.mark.parametrize("proto", ["h2", "h3"])
def test_lab_clients_work_through_the_link(
    make_link: LinkFactory, tmp_path: Path, proto: str,
) -> None:
    link = make_link(delay="25ms")
    server, urls = _serve(link, tmp_path / "certs")
    try:
        result = link.run(
            "client",
            [sys.executable, "-m", "protolab", "get", f"{urls[proto]}bytes/100000",
             "--proto", proto, "--cacert", str(tmp_path / "certs" / "ca.pem"), "--json"],
            capture_output=True, text=True, timeout=TIMEOUT, check=False,
        )
        assert result.returncode == 0, result.stderr
        record = json.loads(result.stdout.splitlines()[-1])
        assert record["error"] is None
        assert record["body_bytes"] == 100_000
        assert record["body_verified"] is not False
    finally:
        server.terminate()
        server.wait(TIMEOUT)
        if server.stdout is not None:
            server.stdout.close()
    counters = link.counters()
    assert counters.down.delivered_bytes > 100_000


@pytest.mark.netem
def test_cli_run_puts_the_command_in_the_client_namespace(netem_available: None) -> None:
    result = _protolab("netem", "run", "--delay", "5ms", "--", "ip", "-4", "-o", "addr", "show")
    assert result.returncode == 0, result.stderr
    assert "plab0" in result.stdout
    assert " peer 10.77." in result.stdout
    assert "delivered_packets" in result.stderr  # the counters table


@pytest.mark.netem
def test_cli_run_passes_the_command_exit_status(netem_available: None) -> None:
    result = _protolab("netem", "run", "--", sys.executable, "-c", "raise SystemExit(7)")
    assert result.returncode == 7


@pytest.mark.netem
def test_cli_check_measures_and_agrees(netem_available: None) -> None:
    result = _protolab("netem", "check", "--delay", "10ms", "--rate", "20mbit", "--probes", "50",
                       "--seconds", "1", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    verdicts = {row["metric"]: row["ok"] for row in report["rows"]}
    assert verdicts["RTT median"] is True
    assert verdicts["TCP goodput down"] is True
    # What the machine and the link themselves added, stated, not judged: 100 probes
    # over a 10 ms link are 100 scheduled deliveries each way.
    measured = {row["metric"]: row["measured"] for row in report["rows"]}
    assert verdicts["link lateness (RTT probes)"] is None
    assert " of 100 ≥ 1 ms" in measured["link lateness (RTT probes)"]
    assert verdicts["CPU stalls (machine)"] is None
    assert float(measured["RTT p99, the link's part"].removesuffix(" ms")) >= 20.0
    assert "/s over 100 us, longest" in measured["CPU stalls (machine)"]


def _in_user_namespace(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """`protolab ARGV` the way an unprivileged user's run goes (user+mount+net namespaces,
    tmpfs /run), entered here as root; skips where user namespaces cannot be made."""
    unshare = ["unshare", "--user", "--map-root-user", "--mount", "--net"]
    probe = subprocess.run([*unshare, "true"], capture_output=True, text=True,
                           timeout=TIMEOUT, check=False)
    if probe.returncode != 0:
        pytest.skip("unprivileged user namespaces cannot be created here: "
                    + (probe.stderr.strip() or f"unshare exited {probe.returncode}"))
    return subprocess.run([*unshare, "--", sys.executable, "-m", "protolab.netem.userns", *argv],
                          capture_output=True, text=True, timeout=TIMEOUT * 2, check=False,
                          env={**os.environ, "PROTOLAB_NETEM_USERNS": "1"})


@pytest.mark.netem
@pytest.mark.skipif(shutil.which("unshare") is None, reason="util-linux unshare is missing")
def test_user_namespace_path_builds_a_working_link(netem_available: None) -> None:
    # The same route an unprivileged user takes (user+mount+net namespaces, tmpfs /run),
    # entered here as root because /dev/net/tun is 0600 on these machines.
    result = _in_user_namespace(["netem", "run", "--delay", "5ms", "--", sys.executable, "-c",
                                 "import socket; s = socket.socket(); s.settimeout(5); "
                                 "print(s.connect_ex(('10.77.0.2', 9)))"])
    assert result.returncode == 0, result.stderr
    # Connection refused (111) proves the SYN crossed the link and the server side answered.
    assert result.stdout.strip().splitlines()[-1] == "111"


@pytest.mark.parametrize("argv", [["bench", "demo"], ["trace", "h1-clear", "--delay", "5ms"]])
def test_bench_and_trace_take_the_unprivileged_path_as_netem_does(
        argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from protolab import cli
    from protolab.netem import userns

    taken: list[list[str]] = []

    def reexec(args: list[str]) -> None:
        taken.append(args)
        raise SystemExit(0)  # the real one replaces the process

    monkeypatch.setattr(userns, "should_reexec", lambda: True)
    monkeypatch.setattr(userns, "reexec", reexec)
    monkeypatch.setattr(sys, "argv", ["protolab", *argv])
    CliRunner().invoke(cli.app, argv)
    assert taken == [argv]


@pytest.mark.netem
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("unshare") is None, reason="util-linux unshare is missing")
def test_trace_runs_inside_a_user_namespace(netem_available: None, tmp_path: Path) -> None:
    result = _in_user_namespace(["trace", "h1-clear", "--delay", "20ms", "--json",
                                 "--out", str(tmp_path / "trace")])
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["trace"]["kind"] == "h1-clear"
    assert report["trace"]["steps"], "the capture through the link holds the handshake"
    assert (tmp_path / "trace" / "trace.pcap").stat().st_size > 0
