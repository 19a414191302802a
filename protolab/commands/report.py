"""`protolab report`: one self-contained HTML file for stored runs (protolab/report/html.py).
Registered by protolab/cli.py; `bench` calls `bench_report` at the end of every run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from protolab.commands.results import check_runs
from protolab.errors import ConfigError, LabError
from protolab.paths import check_output_file
from protolab.store import DEFAULT_DB, ResultsStore
from protolab.terminal import make_console

console = make_console()
err_console = make_console(stderr=True)

HELP = ("Write one self-contained HTML report (opens from file:// with no network) of "
        "stored runs: manifest, verdicts, cells, charts; with several runs or --baseline, "
        "B/A ratios per shared cell. The runs' CSV and JSON exports go beside it.")


def report(
    runs: Annotated[list[int], typer.Argument(help="Run ids (see `protolab results list`).")],
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write.")],
    baseline: Annotated[int | None, typer.Option(
        help="Compare every run with this one (default: the first run given).")] = None,
    db: Annotated[Path, typer.Option("--db", help="Results database.")] = DEFAULT_DB,
    runs_dir: Annotated[Path | None, typer.Option(
        help="Where `bench --out` put the run folders, to link their captures "
        "(default: the database's folder).")] = None,
) -> None:
    from protolab.report.html import write_report

    check_output_file(out, "--out")
    if out.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--out {out}: the report is HTML; give a name ending in .html")
    with ResultsStore(db, create=False) as store:
        check_runs(store, *runs, baseline)
        folders = runs_dir if runs_dir is not None else db.parent
        run_dirs = {}
        for run in dict.fromkeys([*runs, *([baseline] if baseline is not None else [])]):
            labels = {str(c.params.get("label")) for c in store.cells(run)}  # checks the id
            found = find_run_dir(folders, run, labels)
            if found is not None:
                run_dirs[run] = found
        with err_console.status("writing the report ..."):
            written = write_report(store, runs, out, baseline=baseline, run_dirs=run_dirs)
    console.print(f"report: {written[0]}", highlight=False, soft_wrap=True)
    console.print("beside it: " + ", ".join(p.name for p in written[1:]), highlight=False,
                  soft_wrap=True)


def find_run_dir(folder: Path, run_id: int, labels: set[str]) -> Path | None:
    """The folder `bench` wrote run `run_id` into (`run-N`, or `run-N.K` when another
    database's run N came first), recognised by captures named after this run's cells."""
    pattern = re.compile(rf"run-{run_id}(\.\d+)?")
    if not folder.is_dir():
        return None
    for candidate in sorted(folder.iterdir()):
        captures = candidate / "captures"
        if not pattern.fullmatch(candidate.name) or not captures.is_dir():
            continue
        names = {child.name for child in captures.iterdir()}
        if names and all(any(n.startswith("cell-") and f"-{label}-rep-" in n
                             for label in labels) for n in names):
            return candidate
    return None


def bench_report(db: Path, run_id: int, out_dir: Path, errors: Console) -> Path | None:
    """The report `bench` writes at the end of every run: `OUT/run-N/report.html`, its
    exports beside it, its captures (if kept) linked. A report that cannot be written is
    one line on `errors`, never the run's failure: the run is stored either way."""
    from protolab.report.html import write_report

    try:
        with ResultsStore(db, create=False) as store:
            return write_report(store, [run_id], out_dir / "report.html",
                                run_dirs={run_id: out_dir})[0]
    except (LabError, OSError) as exc:
        errors.print(f"report not written: {exc}", highlight=False, soft_wrap=True)
        return None
