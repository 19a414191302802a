"""The project's exception tree: every error a user sees says what to do about it."""

from __future__ import annotations


class LabError(Exception):
    """Base of every error protolab raises on purpose; the CLI prints these without a traceback."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} ({self.hint})" if self.hint else base


class ConfigError(LabError):
    """A setting, option or file the user gave cannot be used as it is."""


class PrivilegeError(LabError):
    """Something needs a privilege (root, a device, a namespace) that this process lacks."""


class CertificateError(LabError):
    """The certificate store is unusable and could not be regenerated."""


class ProtocolFailure(LabError):
    """A request or connection failed; `kind` is a stable, typed name for the failure."""

    def __init__(self, kind: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.kind = kind


class StoreError(LabError):
    """The results database cannot be used: missing run, newer schema, or not a database."""
