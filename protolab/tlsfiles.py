"""The two files a client's TLS touches, checked and opened the same way by every client.

A CA file must hold PEM certificates: OpenSSL, aioquic and grpcio each fail on a bad
one in their own way and at their own time (aioquic only when the server's certificate
arrives, inside an event-loop callback, so the handshake hangs), so it is checked once,
before anything connects. A key log holds the session secrets of every connection
written to it — anyone who reads it decrypts the capture — so it is created mode 0600
and tightened to 0600 when it already exists with looser bits.

A key log is written *during* a run, by a library (OpenSSL for Python's ssl, aioquic),
so a check that only looks at the path cannot see that writes will fail (/dev/full,
a /proc file, a read-only mount). Each check therefore makes one real write of zero
bytes: the kernel runs the file's write path (ENOSPC from /dev/full, EIO from /proc)
and a regular file gains nothing. A regular file on a disk that fills later still
fails mid-run; that failure is the typed `keylog_write` of the request (`KeyLogFile`
for aioquic, `keylog_failure` for what OpenSSL reports), never a traceback.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TextIO

from cryptography import x509

from protolab.errors import ConfigError, ProtocolFailure
from protolab.paths import check_output_file

_SECRET_MODE = 0o600
KEYLOG_WRITE = "keylog_write"  # the typed failure of a key log that cannot be written


def _cannot_write(path: Path, exc: OSError) -> str:
    return f"cannot write the key log {path}: {exc.strerror or exc}"


def _check_writes(fd: int, path: Path) -> None:
    """One write of zero bytes through `fd`: a ConfigError if the file refuses writes."""
    try:
        os.write(fd, b"")
    except OSError as exc:
        raise ConfigError(_cannot_write(path, exc)) from None


def check_ca_file(path: Path, what: str = "CA file") -> None:
    """Raise a ConfigError naming `what` unless `path` holds at least one PEM certificate."""
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a directory, not a PEM file") from None
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc.strerror}") from None
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(
            f"{what} {path} holds no PEM certificate",
            hint="expected -----BEGIN CERTIFICATE----- blocks, e.g. the CA `protolab serve` "
            "prints",
        ) from None


def check_keylog_path(path: Path, what: str = "key log") -> None:
    """Raise a ConfigError naming `what` unless a key log can be appended at `path`.

    Creates nothing: the file appears only when a client first writes secrets to it.
    One that exists already is written to (zero bytes), so a device or /proc file that
    refuses writes is refused here, before anything connects.
    """
    check_output_file(path, what)
    if not path.exists() or stat.S_ISFIFO(path.stat().st_mode):
        return  # nothing to write to yet; a FIFO's writer would wait for its reader
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK)
    except OSError as exc:
        raise ConfigError(_cannot_write(path, exc)) from None
    try:
        _check_writes(fd, path)
    finally:
        os.close(fd)


def _open_secret(path: Path) -> int:
    """`path` opened for appending, mode 0600 (created so, or tightened), and written to."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, _SECRET_MODE)
    except OSError as exc:
        raise ConfigError(_cannot_write(path, exc)) from None
    try:
        _check_writes(fd, path)
        info = os.fstat(fd)
        # A pipe (`--keylog >(tshark ...)`) or device keeps its own mode.
        if stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) & ~_SECRET_MODE:
            os.fchmod(fd, _SECRET_MODE)
    except OSError as exc:
        os.close(fd)
        raise ConfigError(_cannot_write(path, exc)) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_keylog(path: Path) -> TextIO:
    """`path` opened for appending, mode 0600 (created so, or tightened)."""
    return os.fdopen(_open_secret(path), "a")


def prepare_keylog(path: Path) -> None:
    """Create or tighten `path` so a library that opens it by name (Python's ssl
    `keylog_filename`, which would create it 0644 under the usual umask) finds it 0600."""
    open_keylog(path).close()


def keylog_failure(path: Path) -> ProtocolFailure:
    """The typed failure for a key log OpenSSL could not write mid-run. Its error says
    only "[BIO] system lib", so the file is asked again (a zero-byte write) for why."""
    why = "a write failed (is its disk full?)"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK)
        try:
            os.write(fd, b"")
        finally:
            os.close(fd)
    except OSError as exc:
        why = exc.strerror or str(exc)
    return ProtocolFailure(KEYLOG_WRITE, f"cannot write the key log {path}: {why}")


class KeyLogFile:
    """The key log aioquic appends to: unbuffered writes, and a failed one kept as the
    typed failure (`failure`) instead of raised inside aioquic's packet handling, where
    it would escape an event-loop callback, or at close, after the run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.failure: ProtocolFailure | None = None
        self._fd = _open_secret(path)

    def write(self, text: str) -> int:
        if self.failure is None and self._fd >= 0:
            data = text.encode()
            try:
                while data:
                    data = data[os.write(self._fd, data):]
            except OSError as exc:
                self.failure = ProtocolFailure(KEYLOG_WRITE, _cannot_write(self.path, exc))
        return len(text)

    def flush(self) -> None:
        """Nothing is buffered."""

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
