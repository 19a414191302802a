"""The lab's server as a separate process: configured, read until ready, measured, stopped.

The process is `python -m servers.process` (servers/process.py): one `ServerConfig`
document in on its stdin, one JSON line back on its stdout — `{"ready": {...}}` with the
ports per protocol, the URLs, the CA file and its PID, or `{"error": "..."}`. Everything
that starts a server process — the bench runner, the tracer, benchmarks, tests — starts
it here, in the link's server namespace (`start_in_namespace`) or on this machine
(`start_local`). The `LabServer` keeps the pipe to the server's stdin: closing it stops
the server, and so does this process's death, however it dies.

`read_banner` reads the human banner of `protolab serve` instead, for tests and tools
that run that command as a person would.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from protolab.core.procfs import process_cpu_s
from protolab.errors import LabError
from servers.common import ServerConfig

READY_TIMEOUT_S = 60.0  # imports, certificates and binding; a loaded CI machine is slow
STOP_TIMEOUT_S = 5.0
TAIL_BYTES = 2048  # how much of a server's last stderr output is kept, to say why it died


class StderrTail:
    """The last `TAIL_BYTES` a server process wrote on stderr, read by a thread of its
    own from a pipe, so a server that logs a lot never blocks on a full pipe and one
    that dies says why (its traceback's last lines) in the error that reports it."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._kept = b""
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._drain, name="lab-server-stderr",
                                        daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        fd = self._stream.fileno()
        while chunk := os.read(fd, 65_536):
            with self._lock:
                self._kept = (self._kept + chunk)[-TAIL_BYTES:]

    def text(self, wait_s: float = 1.0) -> str:
        """What was kept, once the pipe has ended (or `wait_s` has passed)."""
        self._thread.join(wait_s)
        with self._lock:
            kept = self._kept
        return kept.decode("utf-8", "replace").strip()

    def close(self) -> None:
        """After the process exited: the thread reads to EOF, then the pipe is closed."""
        self._thread.join(STOP_TIMEOUT_S)
        if not self._thread.is_alive():
            self._stream.close()


@dataclass(frozen=True)
class Ready:
    """What a started server said about itself."""

    ports: dict[str, int]  # protocol -> port
    urls: dict[str, str]  # protocol -> URL
    ca_file: Path | None  # None: cleartext
    pid: int


def parse_ready(line: bytes | str) -> Ready:
    """The server's one line, or a LabError saying why it did not start."""
    try:
        document = json.loads(line)
    except ValueError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        raise LabError(document["error"])
    ready = document.get("ready") if isinstance(document, dict) else None
    if not isinstance(ready, dict) or not _is_ready(ready):
        shown = line if isinstance(line, str) else line.decode("utf-8", "replace")
        raise LabError(f"the lab server answered {shown.strip()[:200]!r}, not a ready line",
                       hint="is servers/process.py from this checkout?")
    ca = ready["ca_file"]
    return Ready(dict(ready["ports"]), dict(ready["urls"]), None if ca is None else Path(ca),
                 ready["pid"])


def _is_ready(ready: dict[str, Any]) -> bool:
    ports, urls = ready.get("ports"), ready.get("urls")
    return (isinstance(ports, dict) and isinstance(urls, dict)
            and all(isinstance(k, str) and type(v) is int for k, v in ports.items())
            and all(isinstance(k, str) and isinstance(v, str) for k, v in urls.items())
            and "ca_file" in ready and isinstance(ready["ca_file"], str | None)
            and type(ready.get("pid")) is int)


@dataclass
class LabServer:
    process: subprocess.Popen[bytes]
    ready: Ready
    stderr_tail: StderrTail | None = None  # its stderr's last lines, unless sent elsewhere

    @property
    def ca_file(self) -> Path | None:
        return self.ready.ca_file

    @property
    def urls(self) -> dict[str, str]:
        return self.ready.urls

    @property
    def pid(self) -> int:
        return self.ready.pid

    def port(self, protocol: str) -> int:
        try:
            return self.ready.ports[protocol]
        except KeyError:
            raise LabError(f"the lab server does not serve {protocol}",
                           hint=f"it serves {', '.join(self.ready.ports)}") from None

    def cpu_s(self) -> float:
        return process_cpu_s(self.ready.pid)

    def stop(self) -> None:
        """EOF on its stdin first (a clean stop), then SIGTERM, then SIGKILL."""
        _stop(self.process, STOP_TIMEOUT_S)
        if self.stderr_tail is not None:
            self.stderr_tail.close()

    def __enter__(self) -> LabServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def server_argv() -> list[str]:
    return [sys.executable, "-m", "servers.process"]


def start_local(
    config: ServerConfig,
    *,
    stderr: int | IO[Any] | None = subprocess.PIPE,
    env: dict[str, str] | None = None,
    timeout: float = READY_TIMEOUT_S,
) -> LabServer:
    """The lab's server on this machine (benchmarks, tests), once it is ready. Its stderr
    goes where `stderr` says; a pipe (the default) is drained, its tail kept for the
    error if it dies."""
    process = subprocess.Popen(server_argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=stderr, env=env)
    return _started(process, config, "on this machine", timeout)


def start_in_namespace(
    link: Any,
    config: ServerConfig,
    *,
    stderr: int | IO[Any] | None = subprocess.PIPE,
    timeout: float = READY_TIMEOUT_S,
) -> LabServer:
    """The lab's server in the link's server namespace, once it is ready (`stderr` as
    for `start_local`)."""
    process = link.popen("server", server_argv(), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=stderr)
    return _started(process, config, f"in {link.server_ns}", timeout)


def _started(
    process: subprocess.Popen[bytes], config: ServerConfig, where: str, timeout: float
) -> LabServer:
    assert process.stdin is not None  # both are pipes (a typing fact, not a check)
    assert process.stdout is not None
    tail = StderrTail(process.stderr) if process.stderr is not None else None
    try:
        try:
            process.stdin.write(json.dumps(config.to_json()).encode() + b"\n")
            process.stdin.flush()
        except BrokenPipeError:
            pass  # it died at once; its exit status says more than the pipe
        line = _read_line(process.stdout, timeout)
        if not line:
            try:  # EOF comes as it exits, a moment before its status can be read
                code: int | None = process.wait(1.0)
            except subprocess.TimeoutExpired:
                code = None
            why = f"said nothing for {timeout:g} s" if code is None else f"exited ({code})"
            _stop(process, 0)
            raise LabError(f"the lab server {where} {why} before it was ready"
                           + _said(tail))
        try:
            ready = parse_ready(line)
        except LabError as exc:
            raise LabError(f"the lab server did not start {where}: {exc}") from None
    except BaseException:
        _stop(process, 0)
        if tail is not None:
            tail.close()
        raise
    return LabServer(process, ready, tail)


def _said(tail: StderrTail | None) -> str:
    """The end of the server's stderr, for the error saying it died (once it has)."""
    if tail is None:
        return " (its stderr went elsewhere: look there)"
    text = tail.text()
    if not text:
        return "; it wrote nothing on stderr"
    return f"; the end of its stderr:\n{text}"


def _read_line(stream: IO[bytes], timeout: float) -> bytes:
    """One line from a pipe, or what came before EOF or the timeout (b"" for nothing)."""
    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                return b""
            chunk = os.read(stream.fileno(), 65_536)
            if not chunk:
                return data
            data += chunk
    return data.split(b"\n", 1)[0]


def _stop(process: subprocess.Popen[bytes], grace_s: float) -> None:
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()  # stdin's EOF asks the server to stop
    try:
        process.wait(grace_s)
        return
    except subprocess.TimeoutExpired:
        pass
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass(frozen=True)
class Banner:
    urls: dict[str, str]  # protocol -> URL
    ca_file: Path | None


def read_banner(lines: Iterable[str]) -> Banner | None:
    """`protolab serve`'s banner up to "ready" — `PROTO: URL (tcp|udp)` lines, then
    `CA: PATH` with TLS — or None if the lines end first (the server died)."""
    urls: dict[str, str] = {}
    ca: Path | None = None
    for line in lines:
        key, _, rest = line.strip().partition(": ")
        if key == "CA":
            ca = Path(rest)
        elif "://" in rest:
            urls[key] = rest.split()[0]
        elif line.strip() == "ready":
            return Banner(urls, ca)
    return None
