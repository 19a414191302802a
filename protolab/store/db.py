"""The results file itself: opening it for writing or read-only, its schema, SQLite's errors.

A writer's open makes the file (and its own directory, never a tree), creates or migrates
the schema and runs it in WAL mode: readers (`results list`) never block the runner, and a
crash mid-write rolls back to the last committed transaction. A read-only open (what
`protolab results` uses) never writes: not a schema into an empty file, not a journal
mode, not a migration. It opens the file with SQLite's `mode=ro` and reads an older
schema as it is, the columns later schemas added as NULL.

Every SQLite failure, a damaged file included, leaves here as a `StoreError` naming the
file, so the CLI prints one line, never a `sqlite3` traceback.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from protolab.errors import StoreError
from protolab.store.schema import (
    ADDED_COLUMNS,
    LATE_COLUMNS,
    MIGRATIONS,
    SCHEMA,
    SCHEMA_VERSION,
)


class Database:
    """One SQLite results file; safe to call from one thread at a time."""

    def __init__(self, path: Path, *, writable: bool) -> None:
        self.path = path
        self.writable = writable
        if not writable and not path.exists():
            raise StoreError(f"no results database at {path}",
                             hint="run `protolab bench` or pass --db")
        self._lock = threading.RLock()
        if writable and not path.parent.is_dir():
            # The database's own directory is made (as `mkdir` would: results/ in a fresh
            # checkout), never a tree: a mistyped --db path is an error, not new directories.
            if not path.parent.parent.is_dir():
                raise StoreError(f"directory {path.parent.parent} does not exist",
                                 hint="create it first, or choose another --db")
            try:
                path.parent.mkdir(exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create {path.parent}: {exc.strerror}") from exc
        try:
            if writable:
                self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            else:
                self._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                           isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open results database {path}: {exc}") from exc
        try:
            self._open()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(
                f"{path} is not a usable results database ({exc})",
                hint="choose another --db, or move the file away",
            ) from exc
        except BaseException:
            self._db.close()
            raise

    def _open(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has results schema {version}; this protolab reads up to "
                f"{SCHEMA_VERSION}",
                hint="upgrade protolab or choose another --db",
            )
        if version == 0:
            tables = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables:
                raise StoreError(
                    f"{self.path} is an SQLite database but not a protolab results store",
                    hint="choose another --db",
                )
            if not self.writable:
                raise StoreError(f"{self.path} is empty: it holds no protolab results",
                                 hint="`protolab bench SUITE --db FILE` records a run into it")
            self._db.execute("PRAGMA journal_mode = WAL")
            with self._lock:  # one script, one transaction: no half-created schema
                self._db.executescript(
                    f"BEGIN IMMEDIATE;\n{SCHEMA}\nPRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;"
                )
        elif self.writable:
            self._db.execute("PRAGMA journal_mode = WAL")
            self._migrate(version)
        self._db.execute("PRAGMA foreign_keys = ON")  # only after migrating: see _migrate
        if self.writable:
            self._db.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints
        self.absent: dict[str, str] = {}
        """Per table, the SQL that selects its columns missing from an older schema as NULL
        (`SELECT *{absent['cells']} FROM cells`); empty once the store is current."""
        for table in sorted({t for t, _ in ADDED_COLUMNS}):
            present = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            self.absent[table] = "".join(
                f", NULL AS {c}" for t, c in ADDED_COLUMNS if t == table and c not in present)

    def _migrate(self, version: int) -> None:
        """Bring an older store up to SCHEMA_VERSION, each step in one transaction."""
        self._db.execute("PRAGMA foreign_keys = OFF")  # a table rebuild must not cascade
        for from_version in range(version, SCHEMA_VERSION):
            with self._lock:
                self._db.executescript(
                    f"BEGIN IMMEDIATE;\n{MIGRATIONS[from_version]}\n"
                    f"PRAGMA user_version = {from_version + 1};\nCOMMIT;"
                )
        if version < SCHEMA_VERSION and self._db.execute("PRAGMA foreign_key_check").fetchall():
            raise StoreError(f"migrating {self.path} left rows that point nowhere",
                             hint="keep the file as it is and report it")
        with self._lock:
            for (table, column), kind in LATE_COLUMNS.items():
                present = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
                if column not in present:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; `BEGIN IMMEDIATE` takes the write lock up front, so a
        second writer waits (sqlite3's 5 s timeout) instead of failing half-way."""
        if not self.writable:
            raise StoreError(f"{self.path} was opened read-only")
        with self._lock, self.mapped("write"):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock, self.mapped("read"):
            cursor = self._db.execute(sql, args)
            cursor.row_factory = sqlite3.Row
            return cursor.fetchall()

    def has_table(self, name: str) -> bool:
        """Whether the file has `name` (a read-only open of an older schema may not)."""
        rows = self.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                          (name,))
        return bool(rows)

    @contextmanager
    def mapped(self, action: str) -> Iterator[None]:
        """SQLite's exceptions as one StoreError that names the file."""
        try:
            yield
        except sqlite3.Error as exc:
            damaged = str(getattr(exc, "sqlite_errorname", "")).startswith(
                ("SQLITE_CORRUPT", "SQLITE_NOTADB"))
            raise StoreError(f"cannot {action} {self.path}: {exc}",
                             hint=self._damaged_hint() if damaged else None) from exc

    @contextmanager
    def decoding(self) -> Iterator[None]:
        """A row SQLite returned that does not decode (bad JSON, a bad time) is damage too."""
        try:
            yield
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise StoreError(f"cannot read {self.path}: a stored row does not decode ({exc})",
                             hint=self._damaged_hint()) from exc

    def _damaged_hint(self) -> str:
        return f"the file is damaged; `sqlite3 {self.path} .recover` may save what is left"
