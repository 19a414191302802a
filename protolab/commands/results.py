"""`protolab results ...`: list, show, export and compare stored runs."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from protolab.bench.summary import link_notes
from protolab.core.latency import phases
from protolab.core.record import RequestRecord
from protolab.core.stats import summarize
from protolab.errors import ConfigError, StoreError
from protolab.store import (
    DEFAULT_DB,
    CellInfo,
    MedianComparison,
    ResultsStore,
    RunInfo,
    compare_runs,
    export_run,
    host_warning,
)
from protolab.terminal import make_console, styled

app = typer.Typer(
    help="Stored benchmark runs: list them, show one, export it, compare two.",
    no_args_is_help=True,
    rich_markup_mode=None,  # help is text, not rich markup (protolab/cli.py says why)
)
console = make_console()

DbOpt = Annotated[Path, typer.Option("--db", help="Results database.")]
RunArg = Annotated[int, typer.Argument(help="Run id (see `protolab results list`).")]


# Run ids are SQLite INTEGERs, 64-bit signed: a larger number names no run (and sqlite3
# cannot even bind it: an OverflowError traceback before).
MAX_RUN_ID = 2**63 - 1


def _open(db: Path) -> ResultsStore:
    return ResultsStore(db, create=False)


def check_runs(store: ResultsStore, *runs: int | None) -> None:
    """A run id no store can hold is a missing run, in the store's own words."""
    for run in runs:
        if run is not None and not 1 <= run <= MAX_RUN_ID:
            raise StoreError(f"no run {run} in {store.path}",
                             hint="`protolab results list` shows the runs")


@app.command("list", help="Every run in the database, oldest first.")
def list_runs(db: DbOpt = DEFAULT_DB) -> None:
    with _open(db) as store:
        runs = store.runs()
    table = Table(title=f"runs in {db}")
    for column in ("run", "suite", "status", "started (UTC)", "duration", "cells ok",
                   "samples", "git"):
        table.add_column(column, justify="right" if column in ("run", "samples") else "left")
    for run in runs:
        table.add_row(
            str(run.id), run.suite, _status(run.status), _when(run),
            _duration(run.duration_s), f"{run.cells_ok}/{run.cells}", str(run.samples),
            _git(run.manifest),
        )
    console.print(table)
    if not runs:
        console.print("no runs yet: `protolab bench SUITE` records one", highlight=False)


@app.command(help="One run: its manifest, a row per cell (medians and p99 in ms), its "
             "verdicts. Fits 80 columns; --json gives every setting.")
def show(run: RunArg, db: DbOpt = DEFAULT_DB,
         as_json: Annotated[bool, typer.Option("--json", help="Everything, as JSON.")] = False,
         ) -> None:
    with _open(db) as store:
        check_runs(store, run)
        info = store.run(run)
        cells = store.cells(run)
        rows = [(cell, store.samples(cell.id), store.metrics(cell.id)) for cell in cells]
        tasks = {cell.id: store.cell_tasks(cell.id) for cell in cells}
        verdicts = store.verdicts(run)
    if as_json:
        print(json.dumps({
            "run": info.id, "suite": info.suite, "status": info.status,
            "manifest": info.manifest, "verdicts": verdicts,
            "cells": [{"index": c.index, "status": c.status, "error": c.error,
                       "params": c.params, "samples": c.samples,
                       "ttfb_ms": _summary(r, "ttfb_ms"), "total_ms": _summary(r, "total_ms"),
                       "metrics": {m.name: {"value": m.value, "unit": m.unit} for m in ms},
                       "cpu": _cpu_json(c),
                       "tasks": [dataclasses.asdict(t) for t in tasks[c.id]]}
                      for c, r, ms in rows]}, indent=1, default=str))
        return
    console.print("\n".join(_manifest_lines(info)), highlight=False, soft_wrap=True)
    # Link parameters that differ between cells get a column each (headed by the
    # parameter); what every cell shares goes in the caption.
    links = [cell.params.get("link", {}) for cell, _, _ in rows]
    keys = sorted({k for link in links for k in link})
    swept = [k for k in keys if len({str(link.get(k, "-")) for link in links}) > 1]
    shared = {k: v for k, v in (links[0].items() if links else ()) if k not in swept}
    # A trace-driven link's capacity: in the caption when every cell had the same, else
    # in each cell's notes.
    capacities = [_capacity_words(cell.params) for cell, _, _ in rows]
    shared_capacity = capacities[0] if capacities and len(set(capacities)) == 1 else ""
    notes = {cell.index: "; ".join(n for n in (
        "" if shared_capacity else capacity, _notes(cell, records, metrics)) if n)
        for (cell, records, metrics), capacity in zip(rows, capacities, strict=True)}
    link_words = [*(f"{k}={v}" for k, v in shared.items()), *(f"{k} per cell" for k in swept)]
    table = Table(title=f"cells of run {info.id}", box=box.SIMPLE_HEAD, pad_edge=False, caption=(
        "TTFB, total: median ms (p99); ±: half the 95% CI of the median"
        + ("; link: " + " ".join(link_words) if links and link_words else "")
        + (f"; trace capacity {shared_capacity}" if shared_capacity else "")
        + ("; capacity: the trace's mean Mbit/s (p10–p90 over 100 ms windows)"
           if any(capacities) else "")))
    columns = ["#", "cell", *swept, "n", "TTFB", "±", "total", "±",
               *(["notes"] if any(notes.values()) else [])]
    for column in columns:
        table.add_column(column, justify="right" if column in ("#", "n", "TTFB", "total", "±")
                         else "left", overflow="fold", min_width=len(column))
    for (cell, records, _), link in zip(rows, links, strict=True):
        ttfb = _summary(records, "ttfb_ms")
        total = _summary(records, "total_ms")
        row = [str(cell.index), _cell_words(cell.params),
               *(_link_value(k, link.get(k, "-")) for k in swept),
               str(sum(r.ok for r in records)), _median_p99(ttfb), _half_ci(ttfb),
               _median_p99(total), _half_ci(total)]
        if "notes" in columns:
            row.append(notes[cell.index])
        table.add_row(*row)
    console.print(table)
    if verdicts:
        console.print(_verdict_lines(verdicts), highlight=False, soft_wrap=True)


def _manifest_lines(info: RunInfo) -> list[str]:
    manifest = info.manifest
    packages = manifest.get("packages", {})
    versions = ", ".join(f"{k} {v}" for k, v in packages.items() if v and k != "protolab")
    cpu = manifest.get("cpu", {})
    lines = [
        f"run {info.id}: {info.suite}, {info.status}, started {_when(info)} UTC, "
        f"{_duration(info.duration_s)}",
        f"protolab {manifest.get('lab_version', '?')} ({_git(manifest)}), "
        f"Python {manifest.get('python', {}).get('version', '?')}, "
        f"kernel {manifest.get('kernel', {}).get('release', '?')}",
        f"CPU {cpu.get('model', '?')} x{cpu.get('count')}",
    ]
    if versions:
        lines.append(versions)
    if manifest.get("seeds"):
        lines.append(f"seeds: {_params(manifest['seeds'])}")
    return lines


def _cell_words(params: dict[str, Any]) -> str:
    """A variant in a few words: its label, then what sets it apart (`h2 tls1.3 cubic rr`);
    the full settings are in --json."""
    variant = params.get("variant", {})
    if not isinstance(variant, dict) or "protocol" not in variant:
        return str(params.get("label") or _params(params))
    words = [str(variant["protocol"]),
             f"tls{variant.get('tls_version')}" if variant.get("tls", True) else "clear",
             str(variant.get("cc", ""))]
    if variant.get("scheduling") == "sequential":
        words.append("seq")
    if variant.get("connections", 6) != 6 or variant.get("pipeline", 1) != 1:
        words.append(f"{variant.get('connections')}conn"
                     + (f" pipe{variant['pipeline']}" if variant.get("pipeline", 1) > 1 else ""))
    if not variant.get("keepalive", True):
        words.append("no-keepalive")
    words += [word for flag, word in (("resume", "resume"), ("zero_rtt", "0rtt"))
              if variant.get(flag)]
    return " ".join(w for w in words if w)


def _median_p99(summary: dict[str, float] | None) -> str:
    return "-" if summary is None else f"{summary['p50']:.1f} ({summary['p99']:.0f})"


def _half_ci(summary: dict[str, float] | None) -> str:
    return "-" if summary is None else f"{(summary['high'] - summary['low']) / 2:.1f}"


def _notes(cell: CellInfo, records: list[RequestRecord], metrics: list[Any]) -> str:
    """Only what is noteworthy: a cell that did not finish ok, failed requests, CPU
    saturation, late sends under open load, drops the forwarder could not see."""
    notes = []
    if cell.status != "ok":
        notes.append(cell.status + (f": {cell.error}" if cell.error else ""))
    failed = sum(not r.ok for r in records)
    if failed:
        notes.append(f"{failed} failed")
    if cell.cpu and cell.cpu.cpu_bound:
        notes.append("CPU-bound: " + (",".join(cell.cpu.saturated_parts) or "part not recorded"))
    values = {m.name: m.value for m in metrics}
    if values.get("late_sends"):
        notes.append(f"{values['late_sends']:g} sent late")
    notes += link_notes(values)
    return "; ".join(notes)


def _link_value(key: str, value: Any) -> str:
    """A link parameter for a column: a trace file by its name (--json has the path)."""
    if key in ("trace_up", "trace_down") and isinstance(value, str):
        return Path(value).name
    return str(value)


def _capacity_words(params: dict[str, Any]) -> str:
    """A trace-driven link's capacity per direction, short: `down 12.3 (4.1–20) Mbit/s`."""
    capacity = params.get("link_capacity")
    if not isinstance(capacity, dict):
        return ""
    words = []
    for direction in ("down", "up"):
        stats = capacity.get(direction)
        if not isinstance(stats, dict):
            continue
        try:
            mean, p10, p90 = (float(stats[k]) for k in ("mean_mbps", "p10_mbps", "p90_mbps"))
        except (KeyError, TypeError, ValueError):
            continue  # a damaged or foreign entry: nothing to say rather than a traceback
        words.append(f"{direction} {mean:.3g} ({p10:.2g}–{p90:.3g}) Mbit/s")
    return ", ".join(words)


def _cpu_json(cell: CellInfo) -> dict[str, Any] | None:
    """CPU seconds per part and the parts that were CPU-bound (None: not recorded; with
    `saturated` true and no parts, a store from before the parts were named)."""
    if cell.cpu is None:
        return None
    return {"client": cell.cpu.client, "server": cell.cpu.server,
            "forwarder": cell.cpu.forwarder, "saturated": cell.cpu.cpu_bound,
            "saturated_parts": list(cell.cpu.saturated_parts)}


def _verdict_lines(verdicts: list[dict[str, Any]]) -> str:
    lines = ["claims (protolab/bench/claims.py: holds / refuted / inconclusive):"]
    for v in verdicts:
        where = " ".join(f"{k}={val}" for k, val in v["conditions"].items()) or "-"
        value = "-" if v["value"] is None else f"{v['value']:.3g}"
        ci = ("" if v["ci_low"] is None or v["ci_high"] is None
              else f" [{v['ci_low']:.3g}, {v['ci_high']:.3g}]")
        lines.append(f"  {v['verdict']:<12} {v['claim']} ({where}): {value} {v['unit']}{ci}")
    return "\n".join(lines)


@app.command(help="Write a run's raw samples as CSV (a row per request) or JSON (nested).")
def export(
    run: RunArg,
    format: Annotated[str, typer.Option("--format", "-f", help="csv or json.")] = "csv",
    out: Annotated[Path | None, typer.Option(help="File to write (default: stdout).")] = None,
    db: DbOpt = DEFAULT_DB,
) -> None:
    if format not in ("csv", "json"):
        raise ConfigError(f"--format must be csv or json, not {format!r}")
    with _open(db) as store:
        check_runs(store, run)
        store.run(run)
        if out is None:
            export_run(store, run, "csv" if format == "csv" else "json", sys.stdout)
        else:
            export_run(store, run, "csv" if format == "csv" else "json", out)
            console.print(f"wrote {out}", highlight=False, soft_wrap=True)


@app.command(help="Median TTFB and total time of the cells two runs share; ratio = B / A.")
def compare(run_a: RunArg, run_b: RunArg, db: DbOpt = DEFAULT_DB) -> None:
    with _open(db) as store:
        check_runs(store, run_a, run_b)
        suite_a, suite_b = store.run(run_a).suite, store.run(run_b).suite
        comparison = compare_runs(store, run_a, run_b)
        warning = host_warning(store, run_a, run_b)
    links = [row.params.get("link", {}) for row in comparison]
    keys = sorted({k for link in links for k in link})
    swept = [k for k in keys if len({str(link.get(k, "-")) for link in links}) > 1]
    table = Table(
        title=f"run {run_a} ({suite_a}) vs run {run_b} ({suite_b})", box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption="n: samples of A/B; TTFB, total: A's median in ms; B/A: ratio of the "
        "medians with its 95% bootstrap CI (above 1: run B slower)",
    )
    for column in ("cell", *swept, "n", "TTFB", "B/A", "CI", "total", "B/A", "CI"):
        table.add_column(column, justify="left" if column == "cell" or column in swept
                         else "right", no_wrap=column != "cell")
    for row, link in zip(comparison, links, strict=True):
        table.add_row(
            _cell_words(row.params), *(str(link.get(k, "-")) for k in swept),
            f"{row.n_a}/{row.n_b}", *_compared(row.ttfb), *_compared(row.total),
        )
    console.print(table)
    if warning is not None:
        console.print(styled(warning, "yellow"), highlight=False, soft_wrap=True)
    if not comparison:
        console.print("the two runs share no cell parameters", highlight=False)


def _summary(records: list[RequestRecord], phase: str) -> dict[str, float] | None:
    values = [v for v in (phases(r)[phase] for r in records if r.ok) if v is not None]
    if not values:
        return None
    summary = summarize(values, rng_seed=0)
    return {"p50": summary.p50, "p99": summary.p99, "low": summary.median_ci_low,
            "high": summary.median_ci_high}


def _fmt(summary: dict[str, float] | None, key: str) -> str:
    return "-" if summary is None else f"{summary[key]:.2f}"


def _ci(summary: dict[str, float] | None) -> str:
    return "-" if summary is None else f"{summary['low']:.2f}–{summary['high']:.2f}"


def _compared(phase: MedianComparison) -> tuple[str, str, str]:
    """A's median in ms, the ratio B/A and its 95% CI."""
    a = "-" if phase.a_ms is None else f"{phase.a_ms:.1f}"
    ratio = phase.ratio
    if ratio is None:
        return a, "-", "-"
    return a, f"{ratio.value:.2f}", f"{ratio.ci_low:.2f}–{ratio.ci_high:.2f}"


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())


def _status(status: str) -> Text:
    colour = {"complete": "green", "ok": "green", "running": "cyan"}.get(status, "red")
    return styled(status, colour)


def _when(run: RunInfo) -> str:
    return run.started_at.strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


def _git(manifest: dict[str, Any]) -> str:
    git = manifest.get("git")
    if not git:
        return "-"
    if git.get("revision") is None:
        return str(git.get("note", "-"))
    return str(git.get("revision", "?"))[:10] + ("+dirty" if git.get("dirty") else "")


def _cpu(cell: CellInfo) -> str:
    if cell.cpu is None:
        return "-"
    parts = (cell.cpu.client, cell.cpu.server, cell.cpu.forwarder)
    return "/".join("-" if p is None else f"{p:.2f}" for p in parts)
