"""A stored run written out: CSV (one row per sample, for spreadsheets and pandas) or JSON
(the whole run, nested, for programs).

Each sample carries its latency phases as `protolab.core.latency.phases` computes them
(from the intended send time under open load), so an export agrees with `results show`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path
from typing import Any, Literal, TextIO

from protolab.core.latency import phases
from protolab.errors import ConfigError, StoreError
from protolab.store.model import iso_text
from protolab.store.results import ResultsStore
from protolab.store.schema import RECORD_COLUMNS, SCHEMA_VERSION, dumps

ExportFormat = Literal["csv", "json"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("csv", "json")

_CSV_RECORD_COLUMNS = tuple(c for c in RECORD_COLUMNS if c != "content")  # CSV: size only
_PHASES = ("connect_ms", "tls_ms", "ttfb_ms", "total_ms")


def export_run(
    store: ResultsStore, run_id: int, format: ExportFormat = "csv",
    out: Path | TextIO | None = None,
) -> str | None:
    """Write a run as CSV or JSON to `out`, a path or an open text stream; with None the
    text is returned instead. The whole text is built first, so a store that fails to read
    leaves no half-written file."""
    if format not in EXPORT_FORMATS:
        raise StoreError(f"unknown export format {format!r}; choose csv or json")
    buffer = io.StringIO()
    if format == "csv":
        _write_csv(store, run_id, buffer)
    else:
        json.dump(_run_json(store, run_id), buffer, indent=1, sort_keys=False)
        buffer.write("\n")
    text = buffer.getvalue()
    if out is None:
        return text
    if isinstance(out, Path):
        write_file(out, text)
    else:
        out.write(text)
    return None


def write_file(path: Path, text: str) -> None:
    """Write `text` to `path`, making the file's own directory if its parent exists (as
    `mkdir` would), never a tree: a mistyped path is an error, not new directories."""
    if path.is_dir():
        raise ConfigError(f"cannot write {path}: it is a directory", hint="give a file name")
    if not path.parent.is_dir():
        if path.parent.exists():
            raise ConfigError(f"cannot write {path}: {path.parent} is not a directory")
        if not path.parent.parent.is_dir():
            raise ConfigError(f"cannot write {path}: directory {path.parent.parent} does not"
                              " exist", hint="create it first, or choose another path")
        try:
            path.parent.mkdir(exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot write {path}: cannot create {path.parent}"
                              f" ({exc.strerror})") from exc
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc


def _write_csv(store: ResultsStore, run_id: int, out: TextIO) -> None:
    columns = [
        "run_id", "cell_id", "cell_index", "cell_status", "params", "sample_id",
        "repetition", "warmup", *_CSV_RECORD_COLUMNS, "content_bytes", "arrivals",
        "messages", "transport", *_PHASES,
    ]
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for cell in store.cells(run_id):
        for sample in store.stored_samples(cell.id, include_warmup=True):
            record = sample.record
            row: dict[str, Any] = {
                "run_id": run_id, "cell_id": cell.id, "cell_index": cell.index,
                "cell_status": cell.status, "params": dumps(cell.params),
                "sample_id": sample.id, "repetition": sample.repetition,
                "warmup": int(sample.warmup),
                "content_bytes": None if record.content is None else len(record.content),
                "arrivals": dumps([list(a) for a in record.arrivals]),
                "messages": dumps([dataclasses.asdict(m) for m in record.messages]),
                "transport": dumps(record.transport),
                **{name: getattr(record, name) for name in _CSV_RECORD_COLUMNS},
                **phases(record),
            }
            writer.writerow(row)


def _run_json(store: ResultsStore, run_id: int) -> dict[str, Any]:
    info = store.run(run_id)
    cells = []
    for cell in store.cells(run_id):
        cells.append({
            "id": cell.id, "index": cell.index, "params": cell.params,
            "status": cell.status, "error": cell.error,
            "cpu": dataclasses.asdict(cell.cpu) if cell.cpu else None,
            "started_at": iso_text(cell.started_at),
            "ended_at": iso_text(cell.ended_at),
            "metrics": [
                {"name": m.name, "value": m.value, "unit": m.unit}
                for m in store.metrics(cell.id)
            ],
            "samples": [
                {"id": s.id, "repetition": s.repetition, "warmup": s.warmup,
                 **s.record.to_json(), **phases(s.record)}
                for s in store.stored_samples(cell.id, include_warmup=True)
            ],
        })
    return {
        "format": "protolab-results", "schema": SCHEMA_VERSION,
        "run": {
            "id": info.id, "suite": info.suite, "status": info.status,
            "started_at": iso_text(info.started_at), "ended_at": iso_text(info.ended_at),
            "pid": info.pid, "manifest": info.manifest,
        },
        "cells": cells,
    }
