"""The results database's schema: its tables, its versions, and how a record becomes a row.

The `samples` columns are derived from `RECORD_FIELDS` and the `messages` columns from
`MessageTiming`, each column's SQL type from the field's annotation, so a field added to
the record is stored without a second list to keep in step. The exceptions are named:
`arrivals` and `messages` have tables of their own, `transport` is stored as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import types
import typing
from collections.abc import Sequence
from typing import Any, Literal

from protolab.core.record import RECORD_FIELDS, MessageTiming, RequestRecord

SCHEMA_VERSION = 6

RunStatus = Literal["running", "complete", "interrupted", "failed"]
CellStatus = Literal["ok", "failed", "timeout", "interrupted"]  # how a cell can finish
CellState = Literal["running", "ok", "failed", "timeout", "interrupted"]
RUN_STATUSES: tuple[RunStatus, ...] = ("running", "complete", "interrupted", "failed")
CELL_STATUSES: tuple[CellStatus, ...] = ("ok", "failed", "timeout", "interrupted")
CELL_STATES: tuple[CellState, ...] = ("running", *CELL_STATUSES)
# The tables CHECK these lists; SQLite cannot alter a CHECK, so a new status is a schema
# version whose migration rebuilds the table (as step 2 -> 3 did for `interrupted`).

OWN_TABLES = ("arrivals", "messages")  # record fields stored as rows of their own tables
JSON_FIELDS = ("transport",)  # record fields stored as one JSON text column

_SQL_TYPES: dict[type, str] = {int: "INTEGER", bool: "INTEGER", str: "TEXT", bytes: "BLOB"}


def _base_type(owner: type, name: str, hint: Any) -> tuple[type, bool]:
    """The stored Python type of a field and whether it may be None."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) and len(args) == 2 and type(None) in args:
        base = next(a for a in args if a is not type(None))
        nullable = True
    else:
        base, nullable = hint, False
    if base not in _SQL_TYPES:
        raise TypeError(
            f"{owner.__name__}.{name} is {hint}, which has no SQL column type: store it in a "
            "table of its own or as JSON (protolab/store/schema.py)"
        )
    return base, nullable


def _columns(owner: type, names: Sequence[str]) -> dict[str, tuple[type, bool]]:
    hints = typing.get_type_hints(owner)
    return {name: _base_type(owner, name, hints[name]) for name in names}


def _ddl(columns: dict[str, tuple[type, bool]]) -> list[str]:
    return [f"{name} {_SQL_TYPES[base]}{'' if nullable else ' NOT NULL'}"
            for name, (base, nullable) in columns.items()]


_record_columns = _columns(
    RequestRecord, [n for n in RECORD_FIELDS if n not in OWN_TABLES + JSON_FIELDS]
)
# Scalars in field order, then the blob: SQLite reads a row's columns in order and spills a
# long row to overflow pages, so a body kept in `content` after the scalars costs nothing to
# queries that never read it. (This is also the order schema 2 created, which must not move.)
RECORD_COLUMNS: tuple[str, ...] = (
    *(n for n, (base, _) in _record_columns.items() if base is not bytes),
    *(n for n, (base, _) in _record_columns.items() if base is bytes),
)
BOOL_COLUMNS = frozenset(n for n, (base, _) in _record_columns.items() if base is bool)
_message_columns = _columns(MessageTiming, [f.name for f in dataclasses.fields(MessageTiming)])
MESSAGE_COLUMNS: tuple[str, ...] = tuple(_message_columns)

_SAMPLE_COLUMNS_DDL = ",\n    ".join([
    "id INTEGER PRIMARY KEY",
    "cell_id INTEGER NOT NULL REFERENCES cells(id) ON DELETE CASCADE",
    "repetition INTEGER NOT NULL",
    "warmup INTEGER NOT NULL",
    *_ddl({n: _record_columns[n] for n in RECORD_COLUMNS}),
    *(f"{name} TEXT NOT NULL" for name in JSON_FIELDS),  # a JSON object
])
_MESSAGE_COLUMNS_DDL = ",\n    ".join(_ddl(_message_columns))


def _in(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


_CELLS = f"""
CREATE TABLE cells (
    id             INTEGER PRIMARY KEY,
    run_id         INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    idx            INTEGER NOT NULL,
    params         TEXT NOT NULL,       -- JSON: protocol, link, workload, repetition
    status         TEXT NOT NULL CHECK (status IN ({_in(CELL_STATES)})),
    error          TEXT,
    cpu_client     REAL,                -- CPU seconds during the cell
    cpu_server     REAL,
    cpu_forwarder  REAL,
    saturated      INTEGER,             -- 1: some process was CPU-bound; numbers measure Python
    started_at     TEXT NOT NULL,
    ended_at       TEXT,
    last_sample_at TEXT,                -- samples last stored: where an interrupted cell ended
    saturated_parts TEXT,               -- JSON list: CPU-bound parts (client, server, forwarder)
    UNIQUE (run_id, idx)
);
CREATE INDEX cells_by_run ON cells (run_id);
"""

_VERDICTS = """
CREATE TABLE verdicts (               -- a suite's claims, judged from the run's samples
    run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,      -- order within the run
    claim       TEXT NOT NULL,         -- the claim's id
    claim_json  TEXT NOT NULL,         -- the claim as declared: text, source, metric, relation
    conditions  TEXT NOT NULL,         -- JSON: the link parameters it was measured on
    verdict     TEXT NOT NULL CHECK (verdict IN ('holds', 'refuted', 'inconclusive')),
    value       REAL,                  -- the statistic (median, or ratio of medians A/B)
    ci_low      REAL,
    ci_high     REAL,
    unit        TEXT NOT NULL,
    n_a         INTEGER NOT NULL,
    n_b         INTEGER NOT NULL,
    note        TEXT NOT NULL,
    PRIMARY KEY (run_id, idx)
) WITHOUT ROWID;
"""

# Head-of-line analysis of captured cells (protolab/hol): the link's drops, every byte
# range of every stream (link time, application time, what held it) and per stream the
# HOL delay by cause. Times are monotonic ns, the records' clock.
_HOL = """
CREATE TABLE hol_drops (              -- packets the link dropped, per cell repetition
    cell_id      INTEGER NOT NULL REFERENCES cells(id) ON DELETE CASCADE,
    repetition   INTEGER NOT NULL,
    drop_id      INTEGER NOT NULL,
    at_ns        INTEGER NOT NULL,     -- reached the link
    direction    TEXT NOT NULL,
    reason       TEXT NOT NULL,        -- loss, burst, queue, droplist
    packet       INTEGER NOT NULL,     -- its number among its direction's packets
    size         INTEGER NOT NULL,
    streams      TEXT NOT NULL,        -- JSON list: streams whose data it carried
    refilled_ns  INTEGER,              -- when its data finally crossed
    PRIMARY KEY (cell_id, repetition, drop_id)
) WITHOUT ROWID;
CREATE TABLE hol_pieces (             -- byte ranges of response bodies (DATA frames, STREAM data)
    cell_id      INTEGER NOT NULL REFERENCES cells(id) ON DELETE CASCADE,
    repetition   INTEGER NOT NULL,
    idx          INTEGER NOT NULL,
    stream_id    INTEGER NOT NULL,
    body_offset  INTEGER NOT NULL,
    length       INTEGER NOT NULL,
    link_ns      INTEGER NOT NULL,     -- had crossed the link
    readable_ns  INTEGER NOT NULL,     -- the transport could hand it over
    app_ns       INTEGER,              -- the application had it
    cause        TEXT NOT NULL CHECK (cause IN ('none', 'own', 'others', 'late', 'unattributed')),
    drops        TEXT NOT NULL,        -- JSON list of drop_id
    PRIMARY KEY (cell_id, repetition, idx)
) WITHOUT ROWID;
CREATE TABLE hol_streams (            -- per stream: HOL delay by cause (ns)
    cell_id          INTEGER NOT NULL REFERENCES cells(id) ON DELETE CASCADE,
    repetition       INTEGER NOT NULL,
    stream_id        INTEGER NOT NULL,
    bytes            INTEGER NOT NULL,
    pieces           INTEGER NOT NULL,
    own_ns           INTEGER NOT NULL,
    others_ns        INTEGER NOT NULL,
    late_ns          INTEGER NOT NULL,
    unattributed_ns  INTEGER NOT NULL,
    own_max_ns       INTEGER NOT NULL,
    others_max_ns    INTEGER NOT NULL,
    lost_data        INTEGER NOT NULL,
    exposed          INTEGER NOT NULL,  -- another stream's drop could have held it
    exposed_own      INTEGER NOT NULL,  -- later bytes crossed while its own drop was missing
    drops            TEXT NOT NULL,    -- JSON list of drop_id
    PRIMARY KEY (cell_id, repetition, stream_id)
) WITHOUT ROWID;
"""

# Where each cell repetition ran (schema 6): the machine (one row per distinct description)
# and, per attempt, the worker, its wall-clock span and how it ended. A retry after a lost
# worker is a second attempt of the same repetition.
TASK_STATUSES = ("ok", "failed", "timeout", "lost")
_TASKS = f"""
CREATE TABLE hosts (
    id           INTEGER PRIMARY KEY,
    hostname     TEXT NOT NULL,
    description  TEXT NOT NULL UNIQUE   -- JSON: kernel, CPU, Python, packages, git revision
);
CREATE TABLE cell_tasks (
    cell_id      INTEGER NOT NULL REFERENCES cells(id) ON DELETE CASCADE,
    repetition   INTEGER NOT NULL,
    attempt      INTEGER NOT NULL,      -- 0 the first; a retry after a lost worker counts up
    worker       TEXT NOT NULL,         -- 'local', or the Dask worker's address
    host_id      INTEGER REFERENCES hosts(id),  -- NULL: a lost worker never said
    started_at   TEXT,                  -- wall clock (ISO 8601, UTC), as cells
    ended_at     TEXT,
    status       TEXT NOT NULL CHECK (status IN ({_in(TASK_STATUSES)})),
    error        TEXT,
    PRIMARY KEY (cell_id, repetition, attempt)
) WITHOUT ROWID;
"""

SCHEMA = f"""
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    suite       TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ({_in(RUN_STATUSES)})),
    started_at  TEXT NOT NULL,          -- ISO 8601, UTC
    ended_at    TEXT,
    host        TEXT NOT NULL,          -- pid liveness is only judged on the same host
    pid         INTEGER NOT NULL,
    pid_start   INTEGER,                -- /proc start time of pid, so a reused pid is not alive
    manifest    TEXT NOT NULL           -- JSON: versions, kernel, CPU, settings, seeds
);
{_CELLS}CREATE TABLE samples (
    {_SAMPLE_COLUMNS_DDL}
);
CREATE INDEX samples_by_cell ON samples (cell_id);
CREATE TABLE arrivals (
    sample_id  INTEGER NOT NULL REFERENCES samples(id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    t_ns       INTEGER NOT NULL,
    bytes      INTEGER NOT NULL,
    PRIMARY KEY (sample_id, seq)
) WITHOUT ROWID;
CREATE TABLE messages (               -- per message of WebSocket, gRPC streams, push
    sample_id    INTEGER NOT NULL REFERENCES samples(id) ON DELETE CASCADE,
    idx          INTEGER NOT NULL,
    {_MESSAGE_COLUMNS_DDL},
    PRIMARY KEY (sample_id, idx)
) WITHOUT ROWID;
CREATE TABLE metrics (
    cell_id  INTEGER NOT NULL REFERENCES cells(id) ON DELETE CASCADE,
    name     TEXT NOT NULL,
    value    REAL NOT NULL,
    unit     TEXT NOT NULL,
    PRIMARY KEY (cell_id, name)
) WITHOUT ROWID;
{_VERDICTS}{_HOL}{_TASKS}"""

_V2_CELL_COLUMNS = ("id, run_id, idx, params, status, error, cpu_client, cpu_server, "
                    "cpu_forwarder, saturated, started_at, ended_at")

# Step N brings a store from version N to N + 1; each runs in one transaction with foreign
# keys off (the store turns them on after migrating). Steps are frozen text: they describe
# the schema as it was then, whatever the tables above become later.
MIGRATIONS: dict[int, str] = {
    1: "ALTER TABLE samples ADD COLUMN intended_ns INTEGER;",
    # 3: cells may end `interrupted` and remember when their samples were last stored.
    # SQLite cannot alter a CHECK constraint, so the table is rebuilt (sqlite.org/lang_altertable
    # "making other kinds of table schema changes"); with foreign keys off, dropping the old
    # table does not cascade to its samples, and the rename keeps their references.
    2: f"""
        CREATE TABLE cells_v3 (
            id             INTEGER PRIMARY KEY,
            run_id         INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            idx            INTEGER NOT NULL,
            params         TEXT NOT NULL,
            status         TEXT NOT NULL
                           CHECK (status IN ('running', 'ok', 'failed', 'timeout', 'interrupted')),
            error          TEXT,
            cpu_client     REAL,
            cpu_server     REAL,
            cpu_forwarder  REAL,
            saturated      INTEGER,
            started_at     TEXT NOT NULL,
            ended_at       TEXT,
            last_sample_at TEXT,
            UNIQUE (run_id, idx)
        );
        INSERT INTO cells_v3 ({_V2_CELL_COLUMNS}) SELECT {_V2_CELL_COLUMNS} FROM cells;
        DROP TABLE cells;
        ALTER TABLE cells_v3 RENAME TO cells;
        CREATE INDEX cells_by_run ON cells (run_id);
    """,
    # 4: the verdicts of a suite's claims.
    3: _VERDICTS.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"),
    # 5: head-of-line analysis of captured cells.
    4: _HOL.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"),
    # 6: where each cell repetition ran (the host, the worker, each attempt), and which
    # parts of a cell were CPU-bound (cells.saturated_parts: a LATE_COLUMNS entry, added
    # after the steps, since a store an early build of schema 6 wrote lacks it too).
    5: _TASKS.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"),
}

# Columns later schemas added, so a read-only open (which never migrates) of an older store
# reads them as NULL: (table, column) -> the version that added it.
ADDED_COLUMNS: dict[tuple[str, str], int] = {
    ("samples", "intended_ns"): 2,
    ("cells", "last_sample_at"): 3,
    ("cells", "saturated_parts"): 6,
}

# Columns schema 6 gained after stores had been written with it (it was extended before its
# release): a writer's open adds each one missing, after the migration steps, so a store
# from schema 5 and one from an early 6 end alike. (table, column) -> its SQL type.
LATE_COLUMNS: dict[tuple[str, str], str] = {
    ("cells", "saturated_parts"): "TEXT",
}


def dumps(value: Any) -> str:
    """JSON as the store writes it: compact, keys sorted (equal values, equal text)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def sample_row(record: RequestRecord) -> tuple[Any, ...]:
    """The values of `RECORD_COLUMNS` and then `JSON_FIELDS` of one record."""
    return (*(getattr(record, n) for n in RECORD_COLUMNS),
            *(dumps(getattr(record, n)) for n in JSON_FIELDS))


def message_row(message: MessageTiming) -> tuple[Any, ...]:
    return tuple(getattr(message, n) for n in MESSAGE_COLUMNS)


def record_from_row(
    row: sqlite3.Row,
    arrivals: tuple[tuple[int, int], ...],
    messages: tuple[MessageTiming, ...],
) -> RequestRecord:
    """The record `sample_row` stored. Raises ValueError or TypeError on a damaged row."""
    values: dict[str, Any] = {name: row[name] for name in RECORD_COLUMNS}
    for name in BOOL_COLUMNS:
        if values[name] is not None:
            values[name] = bool(values[name])
    for name in JSON_FIELDS:
        values[name] = json.loads(row[name])
    return RequestRecord(**values, arrivals=arrivals, messages=messages)


def message_from_row(row: sqlite3.Row) -> MessageTiming:
    return MessageTiming(**{name: row[name] for name in MESSAGE_COLUMNS})
