"""The results store: runs, cells, raw samples and derived metrics, written and read.

Raw first: every `RequestRecord` a client produced is stored as it is (with its
data-arrival events and messages), so any summary can be recomputed later; `samples()`
gives the records back unchanged. Each write is one transaction (in WAL mode, see
`db.py`), so a run killed at any point leaves a consistent file whose run is still
`running`; the next writer's open marks such runs, and their cells that did not finish,
`interrupted` when their process is gone. A read-only store shows them so without writing.

`ResultsStore` is its writes (`writes.py`) and its reads (`reads.py`) over one open
database (`access.py`); recognising and ending dead runs is `recovery.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from protolab.store.db import Database
from protolab.store.reads import ResultsReader
from protolab.store.recovery import interrupt_stale_runs
from protolab.store.writes import ResultsWriter

DEFAULT_DB = Path("results/protolab.db")


class ResultsStore(ResultsWriter, ResultsReader):
    """One results database. Synchronous; safe to call from one thread at a time."""

    def __init__(
        self,
        path: Path | str = DEFAULT_DB,
        *,
        create: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Open the database: with `create`, for writing (made if missing, migrated, stale
        runs marked); without, read-only and left exactly as it is."""
        self.path = Path(path)
        self._clock = clock
        self._db = Database(self.path, writable=create)
        if create:
            try:
                self.mark_stale_runs()
            except BaseException:
                self._db.close()
                raise

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def mark_stale_runs(self) -> list[int]:
        """Mark `interrupted` every running run whose process is gone, and its cells that
        did not finish; returns the runs' ids."""
        with self._db.tx() as db:
            return interrupt_stale_runs(db)
