"""The tracer's errors: input it cannot use at all (partial results travel as problems)."""

from __future__ import annotations

from protolab.errors import LabError


class TraceInputError(LabError):
    """A capture or key log that cannot be decoded at all (not merely in part)."""


# Said when a decoder fails in a way no known exception family covers, so users see a
# line instead of a traceback and tests (which look for it) still see the bug.
DECODER_BUG = "a bug in protolab's tracer: please report it with the capture"


def unexpected(exc: BaseException) -> bool:
    """An exception a decoder should have mapped: any Exception, and pyo3's PanicException
    (a BaseException) from a Rust library such as `cryptography` that panicked."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


def bug_note(where: str, exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:160] if str(exc) else ""
    return f"{where}: could not be decoded ({type(exc).__name__}{': ' + text if text else ''}); " \
           f"{DECODER_BUG}"
