"""Network namespaces and TUN devices: the only module that talks to the kernel about them.

Named namespaces are created with `ip netns add` (a bind mount under /run/netns) so
that users can reach them with `ip netns exec NAME ...`. A thread joins one with
setns(2); Python 3.11 has no `os.setns`, so libc's is called through ctypes. setns
on a network namespace changes only the calling thread, and sockets keep the
namespace they were created in after the thread switches back.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import json
import os
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from protolab.errors import LabError, PrivilegeError

T = TypeVar("T")

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000  # every read and write starts with a virtio_net_hdr (offloads)
TUNSETOFFLOAD = 0x400454D0
# What the forwarder accepts from a device: partial checksums and TCP segmentation
# offload (v4, v6, with ECN), so the sender's stack hands over up to 64 KB at a time.
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN = 0x01, 0x02, 0x04, 0x08
TCP_OFFLOADS = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN
# Overridable so the unprivileged path can be exercised where /dev/net/tun is 0600.
TUN_DEVICE = os.environ.get("PROTOLAB_TUN_DEVICE", "/dev/net/tun")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise PrivilegeError(
            f"setns into a network namespace failed: {os.strerror(err)}",
            hint="needs CAP_SYS_ADMIN (root, or inside the user namespace that owns it)",
        )


@contextlib.contextmanager
def entered(netns: str) -> Iterator[None]:
    """Run the body with the *calling thread* inside `netns`, then switch it back."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        os.close(own)
        raise LabError(f"network namespace {netns!r} does not exist") from None
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)


def call_in(netns: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call `fn` on a fresh thread inside `netns` and return its result (or raise its error).

    A fresh thread keeps the caller's own namespace untouched even if `fn` misbehaves.
    """
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            with entered(netns):
                box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    thread = threading.Thread(target=body, name=f"netns-{netns}")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def start_thread_in(
    netns: str, target: Callable[..., object], *args: Any, name: str | None = None,
    daemon: bool = True,
) -> threading.Thread:
    """Start a thread that runs `target(*args)` inside `netns` for its whole life."""

    def body() -> None:
        with entered(netns):
            target(*args)

    thread = threading.Thread(target=body, name=name or f"netns-{netns}", daemon=daemon)
    thread.start()
    return thread


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `ip ARGS...` (argv, never a shell); a failure is a LabError with ip's message."""
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"`ip {' '.join(args)}` failed: {proc.stderr.strip()}")
    return proc


def list_netns() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def add_netns(name: str) -> None:
    ip("netns", "add", name)


def delete_netns(name: str) -> None:
    """Kill what still runs inside, then remove the namespace (missing is fine)."""
    if name not in list_netns():
        return
    for pid in netns_pids(name):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, 9)
    ip("netns", "del", name, check=False)


def netns_pids(name: str) -> list[int]:
    proc = ip("netns", "pids", name, check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def _write_sysctl(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


_TCP_CC = "/proc/sys/net/ipv4/tcp_congestion_control"
_TCP_CC_ALLOWED = "/proc/sys/net/ipv4/tcp_allowed_congestion_control"
# Serialises the brief widening of the machine's allowed list between labs (root only).
_TCP_CC_LOCK = "/run/protolab-tcp-cc.lock"


def set_default_tcp_cc(netns: str, algorithm: str) -> str:
    """Make `algorithm` the default congestion control of every TCP socket opened in
    `netns`, and return what the namespace then says its default is.

    A namespace starts with the initial namespace's default (BBR on these machines).
    Sockets the lab opens set TCP_CONGESTION themselves; this is for those it cannot
    reach (grpcio opens its own in C). /proc/sys/net answers for the network namespace
    of the thread that opens it, so the write happens on a thread inside `netns`.

    The kernel lets a namespace other than the initial one default only to an algorithm
    of `tcp_allowed_congestion_control` (else EPERM; "reno bbr" on some machines, where
    cubic is built in but restricted). Then, as root, the algorithm joins the allowed
    list for the one write and the list is put back at once: the namespace keeps its
    default, the machine its policy. Where even that is refused (an unprivileged user
    namespace), the namespace keeps its default and the caller records which one it is.
    """
    def write_then_read() -> str:
        with contextlib.suppress(OSError):
            _write_sysctl(_TCP_CC, algorithm)
        with open(_TCP_CC) as f:
            return f.read().strip()

    got = call_in(netns, write_then_read)
    if got == algorithm:
        return got
    with contextlib.suppress(OSError), _allowed_for_a_moment(algorithm):
        got = call_in(netns, write_then_read)
    return got


@contextlib.contextmanager
def _allowed_for_a_moment(algorithm: str) -> Iterator[None]:
    """`algorithm` in the machine's allowed list while the block runs, then the list as
    it was (raises OSError where the list cannot be written: not root)."""
    with open(_TCP_CC_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with open(_TCP_CC_ALLOWED) as f:
            before = f.read().strip()
        if algorithm in before.split():
            yield
            return
        _write_sysctl(_TCP_CC_ALLOWED, f"{before} {algorithm}")
        try:
            yield
        finally:
            _write_sysctl(_TCP_CC_ALLOWED, before)


# IPv6 on, but silent: nothing may cross the link that the lab's traffic did not send,
# or drop lists would count it. No router advertisements taken and no solicitations
# sent, no duplicate address detection, and no link-local address (addr_gen_mode 1), so
# nothing is ever sent from one; a TUN device is NOARP, so the kernel joins no
# solicited-node group and sends no MLD report. Measured: an idle link carries nothing.
_QUIET_IPV6 = (("disable_ipv6", "0"), ("accept_ra", "0"), ("router_solicitations", "0"),
               ("accept_dad", "0"), ("dad_transmits", "0"), ("addr_gen_mode", "1"))


def open_tun(netns: str, ifname: str, *, vnet_hdr: bool = False) -> int:
    """Create TUN device `ifname` inside `netns`; the returned fd is the device's far end
    (`vnet_hdr`: each packet on it carries a virtio_net_hdr, see `set_tcp_offload`).

    IPv6 is set up quiet first (`_QUIET_IPV6`), so the device gets both families without
    the router solicitations, DAD probes or MLD reports that would cross the link and
    shift the packet numbers of drop lists. Where a setting is refused, IPv6 is switched
    off instead, as it always was before (then the link is IPv4 only).
    """

    def create() -> int:
        for scope in ("all", "default"):
            try:
                for key, value in _QUIET_IPV6:
                    _write_sysctl(f"/proc/sys/net/ipv6/conf/{scope}/{key}", value)
            except OSError:
                with contextlib.suppress(OSError):
                    _write_sysctl(f"/proc/sys/net/ipv6/conf/{scope}/disable_ipv6", "1")
        fd = os.open(TUN_DEVICE, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            flags = IFF_TUN | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
            ifr = struct.pack("16sH22x", ifname.encode(), flags)
            fcntl.ioctl(fd, TUNSETIFF, ifr)
        except OSError:
            os.close(fd)
            raise
        return fd

    return call_in(netns, create)


def set_tcp_offload(fd: int) -> None:
    """Let the device hand the reader of `fd` (opened with `vnet_hdr`) TCP segments of up
    to 64 KB with partial checksums, as a NIC with TSO takes them: for a link direction
    that changes nothing, so the forwarder moves one super-packet instead of ~44 (what
    the receiving stack then gets is what GRO would have made of them). OSError if the
    kernel refuses."""
    fcntl.ioctl(fd, TUNSETOFFLOAD, TCP_OFFLOADS)


def configure_p2p(netns: str, ifname: str, local: str, peer: str, mtu: int,
                  local6: str | None = None, peer6: str | None = None) -> None:
    """Point-to-point addresses: IPv4 always, and IPv6 (`nodad`: no probes) when given."""
    ip("-n", netns, "link", "set", "lo", "up")
    ip("-n", netns, "addr", "add", local, "peer", f"{peer}/32", "dev", ifname)
    if local6 is not None and peer6 is not None:
        ip("-n", netns, "-6", "addr", "add", f"{local6}/128", "peer", f"{peer6}/128",
           "dev", ifname, "nodad")
    ip("-n", netns, "link", "set", ifname, "mtu", str(mtu), "up")
    if local6 is not None and peer6 is not None:
        # The kernel routes an IPv6 peer address only once the device is up, and then
        # (measured here) to the local end: say where the peer is.
        ip("-n", netns, "-6", "route", "replace", f"{peer6}/128", "dev", ifname)


def add_second_address(client_ns: str, server_ns: str, ifname: str, addr4: str,
                       addr6: str | None = None) -> None:
    """A second address of the client side on the link, and the server side's route back
    to it: what a host that changes networks gets (connection migration, RFC 9000 §9).
    The route to the server keeps the first address as its source: the IPv4 peer route
    names it, and the IPv6 one is deprecated (preferred_lft 0: RFC 6724 rule 3), so only
    a socket bound to the second address sends from it. The forwarder reads packets off
    the TUN devices whatever their addresses, so it carries these as any others."""
    ip("-n", client_ns, "addr", "add", f"{addr4}/32", "dev", ifname)
    ip("-n", server_ns, "route", "replace", f"{addr4}/32", "dev", ifname)
    if addr6 is not None:
        ip("-n", client_ns, "-6", "addr", "add", f"{addr6}/128", "dev", ifname, "nodad",
           "preferred_lft", "0")
        ip("-n", server_ns, "-6", "route", "replace", f"{addr6}/128", "dev", ifname)


def ipv6_enabled(netns: str, ifname: str) -> bool:
    """Whether the device took IPv6 (the kernel may have it disabled)."""
    path = f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"

    def read() -> bool:
        try:
            with open(path) as f:
                return f.read().strip() == "0"
        except OSError:
            return False

    return call_in(netns, read)


def device_drops(netns: str, ifname: str) -> tuple[int, int]:
    """(tx_dropped, rx_dropped) of a device: drops the forwarder never saw."""
    proc = ip("-j", "-s", "-n", netns, "link", "show", "dev", ifname, check=False)
    if proc.returncode != 0:
        return 0, 0
    stats = json.loads(proc.stdout)[0].get("stats64", {})
    return int(stats.get("tx", {}).get("dropped", 0)), int(stats.get("rx", {}).get("dropped", 0))
