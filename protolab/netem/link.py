"""`EmulatedLink`: two namespaces joined by the forwarder, as a context manager.

    with EmulatedLink(build_profile("4g"), pcap="run.pcap") as link:
        server = link.popen("server", ["protolab", "serve", "--host", link.server_addr, ...])
        link.run("client", ["curl", f"http://{link.server_addr}:8080/"])
        print(link.counters().down.dropped_loss)

The client namespace holds `client_addr` (and a second address, `client_addr_alt`, for
a client that moves: connection migration), the server namespace `server_addr`; the
only route between them is the TUN pair through the forwarder. Everything is torn
down in `close()` (called by `__exit__`, at interpreter exit, and on SIGTERM when the
link was started from the main thread); leftovers of a process that died harder are
removed by the next link's start.

Processes started with `popen()` and `run()` die with the process that started the link
(PR_SET_PDEATHSIG, see `deathsig`): a bench killed with SIGKILL leaves no server running.
The forwarder instead exits when its control socket closes, which the kernel does when
the owner dies whichever thread started it. Commands built with `command()` and run by
the caller are the caller's to look after.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Literal, TypeVar

from protolab.core.procfs import process_start
from protolab.errors import ConfigError, LabError
from protolab.netem import forwarder, privileges, state
from protolab.netem import namespaces as ns
from protolab.netem.config import LinkProfile
from protolab.netem.counters import DirectionCounters, LinkCounters
from protolab.netem.deathsig import Spawner, wrap
from protolab.netem.timing import DEFAULT_TIMING, TimingSettings
from protolab.paths import check_output_file
from protolab.tcpsock import CC_ALGORITHMS

T = TypeVar("T")
Side = Literal["client", "server"]
TUN_NAME = "plab0"
log = logging.getLogger(__name__)
_NAME_RE = re.compile(r"^[a-z0-9]{1,24}$")

# The counters moved to `counters`; re-exported for callers that import them from here.
__all__ = ["TUN_NAME", "DirectionCounters", "EmulatedLink", "LinkCounters", "Side",
           "remove_link"]


class EmulatedLink:
    """A live emulated link; build it with a validated `LinkProfile`."""

    def __init__(
        self,
        profile: LinkProfile,
        *,
        name: str | None = None,
        pcap: str | Path | None = None,
        ready_timeout_s: float = 10.0,
        tcp_cc: str = "cubic",
        timing: TimingSettings | None = None,
        offload: bool = True,
    ) -> None:
        if not (isinstance(ready_timeout_s, int | float) and 0 < ready_timeout_s <= 600):
            raise ConfigError(f"ready_timeout_s {ready_timeout_s!r} is out of range: "
                              "allowed 0..600 s, not 0")
        if name is not None and not _NAME_RE.match(name):
            raise ConfigError(
                f"link name {name!r} is not usable",
                hint="use 1-24 lowercase letters and digits",
            )
        self.profile = profile
        self.name = name or f"l{secrets.token_hex(4)}"
        self.pcap_path = Path(pcap) if pcap is not None else None
        if tcp_cc not in CC_ALGORITHMS:
            raise ConfigError(f"TCP congestion control {tcp_cc!r} is not one of "
                              f"{', '.join(CC_ALGORITHMS)}")
        self.tcp_cc = tcp_cc  # what the namespaces' TCP sockets default to (asked)
        self.timing_asked = timing if timing is not None else DEFAULT_TIMING
        # TCP segmentation offload for the directions that change nothing, without a
        # capture (which records wire packets): the directions granted it, once up.
        self.offload_asked = offload
        self.offload: tuple[str, ...] = ()
        # What the forwarder was granted of `timing_asked` (its ready message), once up.
        self.timing: dict[str, Any] = {}
        # What the namespaces say their default is, once built (None: not built yet).
        self.namespace_cc: dict[str, str] = {}
        # Why the forwarder ended the link on its own (its capture refused a write), one
        # line; its counters as they were then stay readable (`counters`).
        self.error: str | None = None
        if self.pcap_path is not None:  # the forwarder writes it: say so now, not after
            check_output_file(self.pcap_path, "pcap")
        self.client_ns = f"{state.PREFIX}{self.name}-c"
        self.server_ns = f"{state.PREFIX}{self.name}-s"
        self.client_addr = ""  # of the profile's family (`profile.ip`)
        self.server_addr = ""
        self.client_addr4 = self.server_addr4 = ""  # both families are always configured
        self.client_addr6 = self.server_addr6 = ""
        # A second client address of the same family, routed from the server side too:
        # where a client moves to (docs/migration.md). Its source only for sockets bound to it.
        self.client_addr_alt = ""
        self.client_addr_alt4 = self.client_addr_alt6 = ""
        self.tun_name = TUN_NAME
        self._ready_timeout_s = ready_timeout_s
        self._record: state.LinkRecord | None = None
        self._state_dir: Path | None = None  # where the record lives, fixed at start
        self._forwarder: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._control_file: Any = None
        self._control_lock = threading.Lock()
        self._children: list[subprocess.Popen[Any]] = []
        self._spawner: Spawner | None = None
        self._final: LinkCounters | None = None
        self._old_sigterm: Any = None

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> EmulatedLink:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Build the link; on any failure, remove whatever was built and re-raise."""
        privileges.require()
        self._claim()
        try:
            self._install_sigterm()
            atexit.register(self.close)
            self._build()
        except BaseException:
            self.close()
            raise

    def _claim(self) -> None:
        with state.locked() as directory:
            self._state_dir = directory
            state.cleanup_leftovers()
            records = state.load_all()
            taken = {r.name for r in records}
            if self.name in taken or {self.client_ns, self.server_ns} & set(ns.list_netns()):
                raise ConfigError(
                    f"a link named {self.name!r} already exists",
                    hint=f"remove it with `protolab netem down {self.name}` or pick another name",
                )
            used = {r.subnet for r in records}
            free = [i for i in range(256) if i not in used]
            if not free:
                raise LabError("256 links exist already; remove some with `protolab netem down`")
            owner_start = process_start(os.getpid())
            if owner_start is None:
                raise LabError("cannot read this process's start time from /proc",
                               hint="the link record needs it to tell a dead owner from a live one")
            self._record = state.LinkRecord(
                name=self.name, client_ns=self.client_ns, server_ns=self.server_ns,
                subnet=free[0], owner_pid=os.getpid(), owner_start=owner_start,
            )
            # Written before anything exists: from now on a crash leaves a findable leftover.
            state.write(self._record, directory)
        self.client_addr4, self.server_addr4 = f"10.77.{free[0]}.1", f"10.77.{free[0]}.2"
        # Unique local addresses (RFC 4193's fd00::/8), one /64 per link like the /24s.
        self.client_addr6 = f"fd00:77:0:{free[0]:x}::1"
        self.server_addr6 = f"fd00:77:0:{free[0]:x}::2"
        six = self.profile.ip == 6
        self.client_addr = self.client_addr6 if six else self.client_addr4
        self.client_addr_alt4 = f"10.77.{free[0]}.3"
        self.client_addr_alt6 = f"fd00:77:0:{free[0]:x}:1::1"  # a short common prefix with ::2
        self.client_addr_alt = self.client_addr_alt6 if six else self.client_addr_alt4
        self.server_addr = self.server_addr6 if six else self.server_addr4

    def _build(self) -> None:
        assert self._record is not None
        mtu = self.profile.mtu
        ns.add_netns(self.client_ns)
        ns.add_netns(self.server_ns)
        self.namespace_cc = {side: ns.set_default_tcp_cc(self.netns(side), self.tcp_cc)
                             for side in ("client", "server")}
        # A direction whose model decides nothing per packet beyond a fixed delay needs no
        # packet-by-packet decision: its TUN may hand the forwarder 64 KB TCP super-packets
        # (docs/netem.md#tcp-offload). Both devices then carry virtio_net_hdrs, so a packet
        # read from one is written to the other as it came.
        plain = [d for d, cfg in (("up", self.profile.up), ("down", self.profile.down))
                 if forwarder.offloadable(cfg)]
        vnet = self.offload_asked and self.pcap_path is None and bool(plain)
        client_fd = ns.open_tun(self.client_ns, TUN_NAME, vnet_hdr=vnet)
        try:
            server_fd = ns.open_tun(self.server_ns, TUN_NAME, vnet_hdr=vnet)
        except BaseException:
            os.close(client_fd)
            raise
        try:
            if vnet:
                self.offload = self._offload(plain, {"up": client_fd, "down": server_fd})
            six = all(ns.ipv6_enabled(n, TUN_NAME) for n in (self.client_ns, self.server_ns))
            if not six:
                if self.profile.ip == 6:
                    raise LabError("IPv6 is disabled in the link's namespaces by this kernel",
                                   hint="use ip = 4, or enable IPv6 (net.ipv6.conf.*)")
                self.client_addr6 = self.server_addr6 = self.client_addr_alt6 = ""
            c6, s6 = (self.client_addr6, self.server_addr6) if six else (None, None)
            ns.configure_p2p(self.client_ns, TUN_NAME, self.client_addr4, self.server_addr4, mtu,
                             c6, s6)
            ns.configure_p2p(self.server_ns, TUN_NAME, self.server_addr4, self.client_addr4, mtu,
                             s6, c6)
            ns.add_second_address(self.client_ns, self.server_ns, TUN_NAME,
                                  self.client_addr_alt4, self.client_addr_alt6 or None)
            self._start_forwarder(client_fd, server_fd, vnet=vnet)
        finally:
            # The forwarder holds its own copies; the devices die with its fds.
            os.close(client_fd)
            os.close(server_fd)

    def _offload(self, directions: list[str], read_fds: dict[str, int]) -> tuple[str, ...]:
        """Turn TCP offload on for each direction's sending device (the one the forwarder
        reads it from); a refusal leaves that direction packet by packet, with a log line."""
        granted = []
        for direction in directions:
            try:
                ns.set_tcp_offload(read_fds[direction])
                granted.append(direction)
            except OSError as exc:
                log.warning("link %s: TCP offload for %s refused (%s): packet by packet",
                            self.name, direction, exc.strerror)
        return tuple(granted)

    def _start_forwarder(self, client_fd: int, server_fd: int, *, vnet: bool = False) -> None:
        assert self._record is not None
        mine, theirs = socket.socketpair()
        self._control = mine
        argv = forwarder.command_line(client_fd, server_fd, theirs.fileno(), self.timing_asked,
                                      self.pcap_path, vnet=vnet)
        try:
            # A session of its own: a terminal's Ctrl-C reaches us, and we stop it in order.
            self._forwarder = subprocess.Popen(
                argv, pass_fds=(client_fd, server_fd, theirs.fileno()), start_new_session=True,
                stdin=subprocess.PIPE,
            )
        finally:
            theirs.close()
        assert self._forwarder.stdin is not None
        # The profile goes on stdin: a long drop list would not fit in one argv string.
        with contextlib.suppress(BrokenPipeError), self._forwarder.stdin as pipe:
            pipe.write(json.dumps(self.profile.to_json()).encode())
        self._record = state.LinkRecord(
            **{**self._record.__dict__, "forwarder_pid": self._forwarder.pid,
               "forwarder_start": process_start(self._forwarder.pid)},
        )
        state.write(self._record, self._state_dir)
        mine.settimeout(self._ready_timeout_s)
        self._control_file = mine.makefile("rb")
        self.timing = forwarder.read_ready(self._control_file, self._forwarder)
        refused = self.timing.get("refused") or []
        if refused:
            # Not fatal: the link works, its timing is looser (docs/netem.md#timing).
            log.warning("link %s: forwarder timing: %s", self.name, "; ".join(refused))

    def close(self) -> None:
        """Tear everything down; idempotent, and safe on a half-built link."""
        atexit.unregister(self.close)
        for child in self._children:
            _stop_process(child)
        self._children.clear()
        if self._spawner is not None:
            self._spawner.close()
            self._spawner = None
        if self._forwarder is not None:
            if self.error is None:
                with contextlib.suppress(LabError, OSError, ValueError):
                    self._final = self._snapshot(stop=True)
            _stop_process(self._forwarder)
            self._forwarder = None
        if self._control_file is not None:
            self._control_file.close()
            self._control_file = None
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._record is not None:
            state.teardown(self._record, self._state_dir)
            self._record = None
        self._restore_sigterm()

    def _install_sigterm(self) -> None:
        # A SIGTERM would otherwise end the process without running `finally` blocks.
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return

        def on_term(signum: int, frame: FrameType | None) -> None:
            raise SystemExit(128 + signum)

        self._old_sigterm = signal.signal(signal.SIGTERM, on_term)

    def _restore_sigterm(self) -> None:
        if self._old_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None

    # -- observation -----------------------------------------------------------------

    @property
    def forwarder_pid(self) -> int | None:
        return self._forwarder.pid if self._forwarder is not None else None

    def alive(self) -> bool:
        """True while the forwarder runs; a dead forwarder means a cut link."""
        return self._forwarder is not None and self._forwarder.poll() is None

    def counters(self) -> LinkCounters:
        """Per-direction counters now (or, after close, as they were at teardown)."""
        if self._forwarder is None or self.error is not None:
            if self._final is None:
                raise LabError("the link is not running and has no counters")
            return self._final
        return self._snapshot(stop=False)

    def _snapshot(self, *, stop: bool) -> LinkCounters:
        if self._control is None or self._control_file is None:
            raise LabError("the link's forwarder is not connected")
        with self._control_lock:
            raw = forwarder.request(self._control, self._control_file,
                                    "stop" if stop else "counters")
        counters = LinkCounters.from_snapshot(raw,
                                              ns.device_drops(self.client_ns, TUN_NAME),
                                              ns.device_drops(self.server_ns, TUN_NAME))
        if isinstance(raw.get("error"), str):  # its last word: the link is cut
            self.error, self._final = raw["error"], counters
        return counters

    # -- running things inside ---------------------------------------------------------

    def netns(self, side: Side) -> str:
        if side == "client":
            return self.client_ns
        if side == "server":
            return self.server_ns
        raise ConfigError(f"side must be 'client' or 'server', got {side!r}")

    def address(self, side: Side) -> str:
        return self.client_addr if self.netns(side) == self.client_ns else self.server_addr

    def command(self, side: Side, argv: list[str]) -> list[str]:
        """`argv` wrapped to run inside a side's namespace (`ip netns exec NS argv...`)."""
        if not argv or not all(isinstance(a, str) for a in argv):
            raise ConfigError("a command must be a non-empty list of strings (argv)")
        return ["ip", "netns", "exec", self.netns(side), *argv]

    def popen(self, side: Side, argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start `argv` inside a side's namespace; it is stopped when the link closes, and
        killed by the kernel if the process that started the link dies first."""
        if kwargs.get("shell"):
            raise ConfigError("shell=True is not allowed: pass argv")
        command = self.command(side, argv)
        if self._spawner is None:
            # Forked from a thread of the link's own: the death signal is tied to the
            # forking thread, and the caller's thread may end long before the link.
            self._spawner = Spawner(f"{self.name}-spawner")
        proc = self._spawner.popen(command, os.getpid(), **kwargs)
        self._children.append(proc)
        return proc

    def run(self, side: Side, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """Run `argv` to completion inside a side's namespace (kwargs as subprocess.run);
        killed by the kernel if this process dies meanwhile (this thread waits for it, so
        the death signal's tie to the forking thread does not matter here)."""
        if kwargs.get("shell"):
            raise ConfigError("shell=True is not allowed: pass argv")
        return subprocess.run(wrap(self.command(side, argv), os.getpid()), **kwargs)  # noqa: PLW1510

    @contextlib.contextmanager
    def entered(self, side: Side) -> Iterator[None]:
        """Switch the *calling thread* into a side's namespace for the body.

        Sockets created in the body stay in that namespace afterwards, so an event loop
        on this thread can keep using them.
        """
        with ns.entered(self.netns(side)):
            yield

    def call(self, side: Side, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call `fn(*args, **kwargs)` on a fresh thread inside a side's namespace."""
        return ns.call_in(self.netns(side), fn, *args, **kwargs)

    def start_thread(
        self, side: Side, target: Callable[..., object], *args: Any, name: str | None = None,
        daemon: bool = True,
    ) -> threading.Thread:
        """Start a thread running `target(*args)` inside a side's namespace."""
        return ns.start_thread_in(self.netns(side), target, *args, name=name, daemon=daemon)


def _stop_process(proc: subprocess.Popen[Any], grace_s: float = 2.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()


def remove_link(name: str) -> list[str]:
    """Remove link `name` of this state directory and the links of its dead owners (for
    `protolab netem down`); namespaces without a record here are left alone."""
    privileges.require(teardown=True)
    with state.locked():
        removed = state.cleanup_leftovers(only=name)
        removed += state.cleanup_leftovers()
    return sorted(set(removed))
