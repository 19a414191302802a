"""Helpers for tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
from typing import Any

from protolab.core.record import Target
from servers.run import RunningServers


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Terminate, then kill if it lingers; close its pipes (an open one is a ResourceWarning,
    an error under filterwarnings=error)."""
    proc.terminate()
    try:
        proc.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


# One scaled timeout unit for everything a test waits on (slow CI machines raise it).
TIMEOUT = float(os.environ.get("PROTOLAB_TEST_TIMEOUT", "20"))


def target_for(running: RunningServers, protocol: str, **fields: Any) -> Target:
    certs = running.certs
    return Target(
        host=running.config.host, port=running.port(protocol), tls=certs is not None,
        ca_file=certs.ca_file if certs else None, **fields,
    )
