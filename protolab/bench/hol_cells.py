"""A captured cell's HOL analysis after a bench run: every measured repetition's capture
folder analysed, stored (per drop, per byte range, per stream) and summarised into the
cell's metrics; and the per-stream values claims are judged on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from protolab.bench.runner import CellCapture
from protolab.bench.suite import Cell
from protolab.core.record import RequestRecord
from protolab.core.stats import median
from protolab.hol.analyse import analyse_capture
from protolab.hol.model import StreamHol, others_ms, own_ms
from protolab.store import ResultsStore


def analyse_cell(store: ResultsStore, cell_id: int, cell: Cell, captures: Path,
                 by_rep: Mapping[int, Sequence[RequestRecord]]) -> tuple[StreamHol, ...]:
    """Analyse, store and summarise every repetition of `cell` that left a capture under
    `captures`; returns every repetition's streams (empty without captures)."""
    streams: list[StreamHol] = []
    stalled: list[int] = []
    floors: list[float] = []
    problems = 0
    for rep, records in sorted(by_rep.items()):
        folder = CellCapture.of(captures, cell, rep).directory
        if not (folder / "link.pcap").exists():
            continue
        result = analyse_capture(folder, records)
        problems += len(result.problems)
        if not result.pieces:
            continue
        store.add_hol(cell_id, rep, result)
        streams += result.streams
        stalled.append(sum(s.stalled for s in result.streams))
        floors.append(result.floor_ns / 1e6)
    if not stalled:
        return ()
    store.add_metric(cell_id, "hol_streams_stalled", median([float(n) for n in stalled]),
                     "streams")
    store.add_metric(cell_id, "hol_floor", median(floors), "ms")
    store.add_metric(cell_id, "hol_problems", problems, "notes")
    for name, values in (("hol_others", others_ms(streams)), ("hol_own", own_ms(streams))):
        if values:
            store.add_metric(cell_id, f"{name}_p50", median(values), "ms")
            store.add_metric(cell_id, f"{name}_max", max(values), "ms")
    return tuple(streams)
