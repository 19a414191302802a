"""A link owned by another process: started in a child that holds it until killed, so
tests can kill owners, look at their leftovers, and run cleanups from elsewhere."""

from __future__ import annotations

import subprocess
import sys

TIMEOUT = 30.0

OWNER = """
import sys
from protolab.netem.link import EmulatedLink
from protolab.netem.profiles import build_profile
link = EmulatedLink(build_profile("loopback"), name=sys.argv[1])
link.start()
print("ready", link.forwarder_pid, link.server_addr, flush=True)
sys.stdin.read()  # until killed
"""


def start_owner(name: str, created: set[str],
                env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], int]:
    """Start the owner of link `name`; returns it and its forwarder's pid once it is up."""
    created.update((f"plab-{name}-c", f"plab-{name}-s"))
    proc = subprocess.Popen([sys.executable, "-c", OWNER, name], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line[:1] == ["ready"], "the owner process did not build its link"
    return proc, int(line[1])


def finish(proc: subprocess.Popen[str]) -> None:
    proc.wait(TIMEOUT)
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()
