"""The results store: runs, cells and raw samples in one SQLite file, and what is built on
it.

`schema` (tables, versions, record ↔ row), `db` (opening the file for writing or
read-only, migrations, SQLite's errors as `StoreError`), `model` (what reads return),
`results` (`ResultsStore`: writes and reads), `export` (CSV / JSON), `compare` (two runs'
medians and B / A ratios), `manifest` (what a run records about itself).
"""

from protolab.store.compare import CellComparison, MedianComparison, compare_runs, host_warning
from protolab.store.export import EXPORT_FORMATS, ExportFormat, export_run
from protolab.store.manifest import manifest
from protolab.store.model import CellInfo, CpuTimes, Metric, RunInfo, StoredSample, TaskRun
from protolab.store.results import DEFAULT_DB, ResultsStore
from protolab.store.schema import (
    CELL_STATUSES,
    RUN_STATUSES,
    SCHEMA_VERSION,
    CellState,
    CellStatus,
    RunStatus,
)

__all__ = [
    "CELL_STATUSES", "DEFAULT_DB", "EXPORT_FORMATS", "RUN_STATUSES", "SCHEMA_VERSION",
    "CellComparison", "CellInfo", "CellState", "CellStatus", "CpuTimes", "ExportFormat",
    "MedianComparison", "Metric", "ResultsStore", "RunInfo", "RunStatus", "StoredSample",
    "TaskRun", "compare_runs", "export_run", "host_warning", "manifest",
]
