"""The unprivileged path: re-run a `protolab netem` command inside a user namespace.

As a normal user, `unshare --user --map-root-user --mount --net` gives a process uid 0
and the capabilities it needs over namespaces it creates; `--net` matters because
`ip netns add` switches back to the *current* network namespace, which must belong to
the new user namespace. A tmpfs on /run (inside the private mount namespace) makes
/run/netns and the link records writable. What still has to be true of the host:
user namespaces enabled, and /dev/net/tun usable by the user (mode 0666).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import sys

from protolab.errors import PrivilegeError
from protolab.netem import privileges

MARKER_ENV = "PROTOLAB_NETEM_USERNS"


def should_reexec() -> bool:
    """True when not root but the unprivileged path can work (and we are not in it yet)."""
    if os.environ.get(MARKER_ENV) or os.geteuid() == 0:
        return False
    return (
        privileges.userns_available()
        and privileges.tun_usable()
        and shutil.which("unshare") is not None
    )


def reexec(argv: list[str]) -> None:
    """Replace this process with `argv` (protolab's arguments) inside a user namespace."""
    os.environ[MARKER_ENV] = "1"
    os.execvp("unshare", [
        "unshare", "--user", "--map-root-user", "--mount", "--net", "--",
        sys.executable, "-m", "protolab.netem.userns", *argv,
    ])


def _mount_tmpfs(target: str) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    if libc.mount(b"none", target.encode(), b"tmpfs", 0, b"mode=0755") != 0:
        err = ctypes.get_errno()
        raise PrivilegeError(f"cannot mount a tmpfs on {target} in the user namespace: "
                             f"{os.strerror(err)}")


def main() -> None:
    _mount_tmpfs("/run")
    os.execv(sys.executable, [sys.executable, "-m", "protolab", *sys.argv[1:]])


if __name__ == "__main__":
    main()
