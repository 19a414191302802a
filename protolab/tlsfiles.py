"""The two files a client's TLS touches, checked and opened the same way by every client.

A CA file must hold PEM certificates: OpenSSL, aioquic and grpcio each fail on a bad
one in their own way and at their own time (aioquic only when the server's certificate
arrives, inside an event-loop callback, so the handshake hangs), so it is checked once,
before anything connects. A key log holds the session secrets of every connection
written to it — anyone who reads it decrypts the capture — so it is created mode 0600
and tightened to 0600 when it already exists with looser bits.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TextIO

from cryptography import x509

from protolab.errors import ConfigError
from protolab.paths import check_output_file

_SECRET_MODE = 0o600


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
    """
    check_output_file(path, what)


def open_keylog(path: Path) -> TextIO:
    """`path` opened for appending, mode 0600 (created so, or tightened)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, _SECRET_MODE)
    except OSError as exc:
        raise ConfigError(f"cannot write the key log {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        # A pipe (`--keylog >(tshark ...)`) or device keeps its own mode.
        if stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) & ~_SECRET_MODE:
            os.fchmod(fd, _SECRET_MODE)
        return os.fdopen(fd, "a")
    except OSError as exc:
        os.close(fd)
        raise ConfigError(f"cannot write the key log {path}: {exc.strerror}") from None
    except BaseException:
        os.close(fd)
        raise


def prepare_keylog(path: Path) -> None:
    """Create or tighten `path` so a library that opens it by name (Python's ssl
    `keylog_filename`, which would create it 0644 under the usual umask) finds it 0600."""
    open_keylog(path).close()
