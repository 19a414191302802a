"""An open results database and the lookups every read and write of it starts from.

`ResultsStore` (protolab.store.results) is its writes (`writes.ResultsWriter`) and its
reads (`reads.ResultsReader`); both stand on this: the file, the clock that stamps what
is written, and the checks that a run or a cell is there, failing with a `StoreError`
that names the file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from protolab.errors import StoreError
from protolab.store.db import Database
from protolab.store.model import iso


class StoreAccess:
    """The database, its path and clock; `ResultsStore.__init__` sets them."""

    path: Path
    _db: Database
    _clock: Callable[[], float]

    def _now(self) -> str:
        return iso(self._clock())

    def _run_row(self, run_id: int) -> sqlite3.Row:
        rows = self._db.query("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise self._no_run(run_id)
        return rows[0]

    def _no_run(self, run_id: int) -> StoreError:
        return StoreError(
            f"no run {run_id} in {self.path}", hint="`protolab results list` shows the runs"
        )

    def _cell_exists(self, cell_id: int) -> None:
        if not self._db.query("SELECT 1 FROM cells WHERE id = ?", (cell_id,)):
            raise StoreError(f"no cell {cell_id} in {self.path}")
