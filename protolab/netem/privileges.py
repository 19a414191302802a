"""Can this process build a link? Say exactly what is missing before touching anything.

Two paths work: real root, or the unprivileged path — inside a user namespace
(`unshare --user --map-root-user --mount`) a process is uid 0 with CAP_NET_ADMIN
and CAP_SYS_ADMIN over namespaces it creates, which is all the link needs, provided
/dev/net/tun is usable by the real user (mode 0666, the usual default; it is 0600
on some hosts) and /run is writable there (a tmpfs mounted inside the namespace).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from protolab.errors import PrivilegeError
from protolab.netem.namespaces import NETNS_DIR, TUN_DEVICE

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
UNPRIVILEGED_HOWTO = (
    "run as root (sudo), or on a host where /dev/net/tun is mode 0666 run "
    "`unshare --user --map-root-user --mount --net sh -c 'mount -t tmpfs none /run && exec "
    "protolab netem ...'` (protolab takes that path by itself when it can); "
    "see docs/netem.md#privileges"
)


def effective_caps() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def userns_available() -> bool:
    try:
        return int(Path("/proc/sys/user/max_user_namespaces").read_text()) > 0
    except (OSError, ValueError):
        return False


def tun_usable() -> bool:
    return os.access(TUN_DEVICE, os.R_OK | os.W_OK)


def missing(*, tun: bool = True) -> list[str]:
    """Human-readable list of what stops this process from building a link (with `tun`
    False: from removing one, which needs no TUN device); empty: fine."""
    problems = []
    if shutil.which("ip") is None:
        problems.append("the `ip` command is missing: install iproute2 (apt-get install iproute2)")
    caps = effective_caps()
    need = {CAP_NET_ADMIN: "CAP_NET_ADMIN", CAP_SYS_ADMIN: "CAP_SYS_ADMIN"}
    lacking = [name for bit, name in need.items() if not caps >> bit & 1]
    if lacking:
        where = "" if userns_available() else " (and user namespaces are disabled here)"
        problems.append(f"this process lacks {' and '.join(lacking)}{where}")
    if tun and not os.path.exists(TUN_DEVICE):
        problems.append(f"{TUN_DEVICE} does not exist: load the tun module (modprobe tun)")
    elif tun and not tun_usable():
        mode = oct(os.stat(TUN_DEVICE).st_mode & 0o777)
        problems.append(
            f"{TUN_DEVICE} is mode {mode} and not usable by uid {os.getuid()}: "
            f"chmod 0666 {TUN_DEVICE} (as root) or run as root"
        )
    run_dir = Path(NETNS_DIR).parent
    if not lacking and not os.access(run_dir, os.W_OK):
        problems.append(
            f"{run_dir} is not writable, so named namespaces cannot be created: "
            "inside a user namespace mount a tmpfs on /run first"
        )
    return problems


def require(*, teardown: bool = False) -> None:
    """Raise PrivilegeError naming every missing piece; do nothing when the link can be
    built (with `teardown`: removed)."""
    problems = missing(tun=not teardown)
    if problems:
        what = "remove emulated links" if teardown else "build the emulated link"
        raise PrivilegeError(f"cannot {what}: " + "; ".join(problems), hint=UNPRIVILEGED_HOWTO)
