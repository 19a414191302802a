"""What a lab may touch: only its own links; what it leaves when killed: nothing running;
and what a user without the privileges sees: one line, never a traceback."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from protolab.core.procfs import process_start, process_state
from protolab.errors import PrivilegeError
from protolab.netem import namespaces, state
from protolab.netem.link import EmulatedLink, remove_link
from protolab.netem.profiles import Overrides, build_profile
from tests.netem.owners import TIMEOUT, finish, start_owner

LinkFactory = Callable[..., EmulatedLink]


def _gone(pid: int, start: int | None) -> bool:
    """Dead for every purpose: no such process, another one under its pid, or a zombie
    (it holds no memory; its reaper here is PID 1, which may take a second)."""
    return process_start(pid) != start or process_state(pid) in (None, "Z")


def _wait_gone(pid: int, start: int | None) -> bool:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if _gone(pid, start):
            return True
        time.sleep(0.02)
    return False


@contextlib.contextmanager
def _state_dir(monkeypatch: pytest.MonkeyPatch, path: Path) -> Iterator[None]:
    with monkeypatch.context() as patch:
        patch.setenv(state.STATE_DIR_ENV, str(path))
        yield


# -- privileges ---------------------------------------------------------------------------

UNPRIVILEGED = {
    "nobody": ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"],
    # uid 0 without a single capability: what a container without CAP_NET_ADMIN gives.
    "root-without-capabilities": ["setpriv", "--inh-caps=-all", "--bounding-set=-all"],
}


def _unprivileged(how: str) -> list[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is missing: no way to drop privileges here")
    prefix = UNPRIVILEGED[how]
    probe = subprocess.run([*prefix, sys.executable, "-c", "import protolab.netem.cli"],
                           capture_output=True, text=True, timeout=TIMEOUT, check=False)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or [f"exit {probe.returncode}"])[-1]
        pytest.skip(f"{how} cannot run this checkout's Python (is it under a 0700 "
                    f"directory?): {last[:160]}")
    return prefix


@pytest.mark.parametrize("how", sorted(UNPRIVILEGED))
@pytest.mark.parametrize("argv", [["down", "mylink"], ["up", "--delay", "5ms"],
                                  ["run", "--", "true"], ["check"]])
def test_netem_without_privileges_is_one_line_and_a_failure(
    tmp_path: Path, how: str, argv: list[str],
) -> None:
    prefix = _unprivileged(how)
    locked = tmp_path / "state"
    locked.mkdir(mode=0o500)  # nobody, and root without CAP_DAC_OVERRIDE, cannot write it
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "protolab", "netem", *argv], capture_output=True,
        text=True, timeout=TIMEOUT, check=False,
        env={**os.environ, state.STATE_DIR_ENV: str(locked / "links"),
             "PROTOLAB_NETEM_USERNS": "1"},  # test the refusal, not the user-namespace path
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot ")
    assert "CAP_NET_ADMIN" in lines[0]
    assert "docs/netem.md#privileges" in lines[0]  # the hint
    assert not (locked / "links").exists()


def test_an_unusable_state_directory_is_a_privilege_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(state.STATE_DIR_ENV, str(blocker / "links"))
    with pytest.raises(PrivilegeError, match="cannot use the link state directory") as info, \
            state.locked():
        pass
    assert info.value.hint is not None
    assert state.STATE_DIR_ENV in info.value.hint


def test_records_that_name_foreign_namespaces_are_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(state.STATE_DIR_ENV, str(tmp_path))
    # A dead owner, but a namespace protolab would never have made: not acted on.
    (tmp_path / "evil.json").write_text(
        '{"name": "evil", "client_ns": "important", "server_ns": "plab-evil-s", '
        '"subnet": 3, "owner_pid": 4194305, "owner_start": 1}')
    (tmp_path / "torn.json").write_text("{")
    assert state.load_all() == []
    assert (tmp_path / "torn.json").exists(), "a file we cannot read is not ours to delete"


# -- one lab's cleanup must not remove another's live links --------------------------------

@pytest.mark.netem
def test_another_state_directory_leaves_a_live_link_alone(
    make_link: LinkFactory, created_namespaces: set[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    theirs, ours = tmp_path / "theirs", tmp_path / "ours"
    name = f"theirs{secrets.token_hex(3)}"
    env = {**os.environ, state.STATE_DIR_ENV: str(theirs)}
    proc, forwarder = start_owner(name, created_namespaces, env=env)
    assert proc.stdout is not None
    try:
        forwarder_start = process_start(forwarder)
        with _state_dir(monkeypatch, ours):
            # `netem down` and a link start both clean leftovers of crashed runs.
            down = subprocess.run(
                [sys.executable, "-m", "protolab", "netem", "down", name], capture_output=True,
                text=True, timeout=TIMEOUT, check=False,
                env={**os.environ, state.STATE_DIR_ENV: str(ours)})
            make_link().close()
            assert remove_link("nosuchlink") == []
        assert down.returncode == 1
        assert "not ours, left alone" in down.stderr
        assert f"plab-{name}-c" in down.stderr
        assert {f"plab-{name}-c", f"plab-{name}-s"} <= set(namespaces.list_netns())
        assert process_start(forwarder) == forwarder_start, "their forwarder was killed"
        # ... and the link still carries packets: the server side answers (refuses) a SYN.
        server_addr = _server_addr(name)
        probe = subprocess.run(
            ["ip", "netns", "exec", f"plab-{name}-c", sys.executable, "-c",
             "import socket; s = socket.socket(); s.settimeout(5); "
             f"print(s.connect_ex(({server_addr!r}, 9)))"],
            capture_output=True, text=True, timeout=TIMEOUT, check=False)
        assert probe.stdout.strip() == "111", probe.stderr
    finally:
        proc.kill()
        finish(proc)
        with _state_dir(monkeypatch, theirs), state.locked():
            assert name in state.cleanup_leftovers()  # its owner is dead now: theirs to clean


def _server_addr(name: str) -> str:
    out = namespaces.ip("-n", f"plab-{name}-s", "-4", "-o", "addr", "show", "dev", "plab0")
    return out.stdout.split()[3].split("/")[0]


# -- children die with the process that started the link ------------------------------------

_PARENT = """
import sys, threading
from protolab.netem.link import EmulatedLink
from protolab.netem.profiles import build_profile
link = EmulatedLink(build_profile("loopback"), name=sys.argv[1])
link.start()
box = {}
def start_server():
    box["server"] = link.popen("server", [sys.executable, "-c", "import time; time.sleep(600)"])
# Started from a thread that ends at once: the death signal must not follow that thread.
thread = threading.Thread(target=start_server)
thread.start()
thread.join()
print("ready", box["server"].pid, flush=True)
link.run("client", [sys.executable, "-c", "import time; time.sleep(600)"])
"""


@pytest.mark.netem
def test_children_die_when_the_process_that_started_the_link_is_killed(
    netem_available: None, created_namespaces: set[str],
) -> None:
    name = f"orphans{secrets.token_hex(3)}"
    client_ns, server_ns = f"plab-{name}-c", f"plab-{name}-s"
    created_namespaces.update((client_ns, server_ns))
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, name], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline().split()
        assert line[:1] == ["ready"], "the parent did not build its link"
        server = int(line[1])
        client = _wait_for_pid_in(client_ns)
        children = {pid: process_start(pid) for pid in (server, client)}
        for pid in children:
            assert not _gone(pid, children[pid]), "a child died before its parent"
            assert _inside(pid, client_ns if pid == client else server_ns)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(TIMEOUT)
        for pid, start in children.items():
            assert _wait_gone(pid, start), f"child {pid} outlived its SIGKILLed parent"
    finally:
        parent.kill()
        parent.wait(TIMEOUT)
        if parent.stdout is not None:
            parent.stdout.close()
        with state.locked():
            state.cleanup_leftovers(only=name)


def _wait_for_pid_in(netns: str) -> int:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        pids = [p for p in namespaces.netns_pids(netns) if b"time.sleep" in _cmdline(p)]
        if pids:
            return pids[0]
        time.sleep(0.02)
    raise AssertionError(f"no command started in {netns}")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _inside(pid: int, netns: str) -> bool:
    """`pid` runs the command itself (the wrapper has exec'd through `ip netns exec`) in
    `netns`."""
    deadline = time.monotonic() + TIMEOUT
    while b"time.sleep" not in _cmdline(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{netns}").st_ino


# -- a profile too large for one argv string still reaches the forwarder ------------------

@pytest.mark.netem
def test_a_drop_list_larger_than_an_argv_string_reaches_the_forwarder(
    make_link: LinkFactory,
) -> None:
    # 60,000 separate packet numbers: ~1 MB of JSON, past the kernel's 128 KiB per argument.
    many = ",".join(str(i) for i in range(1_000_000, 1_120_000, 2))
    profile = build_profile("loopback", Overrides(drop=(f"down:{many}",)))
    link = make_link(profile)
    assert isinstance(link, EmulatedLink)
    assert link.alive()
    assert link.counters().down.dropped_droplist == 0
