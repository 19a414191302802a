"""The tracer's errors: input it cannot use at all (partial results travel as problems)."""

from __future__ import annotations

from protolab.errors import LabError


class TraceInputError(LabError):
    """A capture or key log that cannot be decoded at all (not merely in part)."""
