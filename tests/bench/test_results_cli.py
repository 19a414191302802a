"""`protolab results ...` as a user runs it, on a database filled through the store API,
and on the databases and paths users get wrong: damaged, empty, unwritable."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from protolab.bench.suite import expand, parse_suite
from protolab.bench.summary import summarize_cell
from protolab.store import CpuTimes, ResultsStore, manifest
from tests.bench.test_store import MS, record
from tests.helpers import TIMEOUT


def protolab(*args: str, wrapper: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*wrapper, sys.executable, "-m", "protolab", *args],
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("results") / "lab.db"
    with ResultsStore(path) as store:
        for suite, scale in (("handshake", 1.0), ("handshake-again", 1.5)):
            run = store.begin_run(suite, manifest(seeds={"link": 1}))
            for index, protocol in enumerate(("h2", "h3")):
                cell = store.add_cell(run, index, {"protocol": protocol, "rtt_ms": 50,
                                                   "repetition": 0})
                base = 150.0 if protocol == "h2" else 100.0
                store.add_samples(
                    cell, [record(i, ttfb_ms=base * scale + i, total_ms=base * scale + 5 + i)
                           for i in range(20)],
                    repetition=0, warmup=False,
                )
                store.finish_cell(cell, "ok", cpu=CpuTimes(0.4, 0.3, 0.1, saturated=index == 1))
            store.add_metric(cell, "ttfb_rtts", 2.0, "RTT")
            store.finish_run(run, "complete")
    return path


def test_list_shows_runs(db: Path) -> None:
    result = protolab("results", "list", "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert "handshake-again" in result.stdout
    assert "complete" in result.stdout
    assert "2/2" in result.stdout


def test_show_gives_percentiles_per_cell(db: Path) -> None:
    result = protolab("results", "show", "1", "--db", str(db))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "protocol=h2 rtt_ms=50 repetition=0" in out  # cells without a variant: raw params
    assert "159.0 (169)" in out  # h2 TTFB: nearest-rank p50 (HDR bucket middle) and p99
    assert "CPU-bound" in out  # noteworthy, so noted


def test_show_fits_80_columns_and_json_holds_every_setting(tmp_path: Path) -> None:
    suite = parse_suite({"variant": [{"protocol": "h2", "scheduling": "sequential"},
                                     {"protocol": "h1", "tls": False, "connections": 1}],
                         "link": {"overrides": {"rate": "10mbit"},
                                  "sweep": {"delay": ["5ms", "25ms"]}},
                         "repetitions": 1, "warmup": 0})
    path = tmp_path / "lab.db"
    with ResultsStore(path) as store:
        run = store.begin_run("mine", manifest())
        for cell in expand(suite):
            cell_id = store.add_cell(run, cell.index, cell.params(suite))
            store.add_samples(cell_id, [record(i) for i in range(3)], 0, False)
            store.finish_cell(cell_id, "ok")
        store.finish_run(run, "complete")
    result = subprocess.run([sys.executable, "-m", "protolab", "results", "show", "1", "--db",
                             str(path)], capture_output=True, text=True, timeout=TIMEOUT,
                            check=False, env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    table = lines[lines.index(next(line for line in lines if "cells of run" in line)):]
    assert all(len(line) <= 80 for line in table)
    header = next(line for line in table if "TTFB" in line)
    assert header.split() == ["#", "cell", "delay", "n", "TTFB", "±", "total", "±"]
    assert any("h2 tls1.3 cubic seq" in line for line in table)
    assert any("h1 clear cubic 1conn" in line for line in table)
    assert "{" not in "".join(table)  # no dict dumps
    full = json.loads(protolab("results", "show", "1", "--json", "--db", str(path)).stdout)
    assert full["cells"][0]["params"]["variant"]["window"] == 4 << 20


def test_export_csv_and_json(db: Path, tmp_path: Path) -> None:
    result = protolab("results", "export", "2", "--format", "csv", "--db", str(db))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 40
    out = tmp_path / "run2.json"
    result = protolab("results", "export", "2", "--format", "json", "--out", str(out),
                      "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["run"]["suite"] == "handshake-again"


def test_compare_prints_ratios(db: Path) -> None:
    result = protolab("results", "compare", "1", "2", "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert " 1.47 " in result.stdout  # h2 TTFB medians 234.5 / 159.5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "99"), "no run 99"),
        (("compare", "1", "99"), "no run 99"),
        (("export", "1", "--format", "xml"), "--format must be csv or json"),
    ],
)
def test_mistakes_are_one_clear_line(db: Path, args: tuple[str, ...], message: str) -> None:
    result = protolab("results", *args, "--db", str(db))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    result = protolab("results", "list", "--db", str(tmp_path / "none.db"))
    assert result.returncode == 2
    assert "no results database" in result.stderr
    assert not (tmp_path / "none.db").exists()


def one_clear_line(result: subprocess.CompletedProcess[str]) -> str:
    """The CLI's answer to a mistake: exit 2, one `error: ...` line, no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


READ_COMMANDS = [("list",), ("show", "1"), ("export", "1"), ("export", "1", "-f", "json"),
                 ("compare", "1", "1")]


def test_a_damaged_database_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "lab.db"
    with ResultsStore(path) as store:
        run = store.begin_run("big", manifest())
        for index in range(4):
            cell = store.add_cell(run, index, {"protocol": "h2", "index": index})
            store.add_samples(cell, [record(i) for i in range(300)], repetition=0, warmup=False)
            store.finish_cell(cell, "ok")
        store.finish_run(run, "complete")
    # Whole pages in the middle third of the file (raw samples, mostly) overwritten with
    # noise; the file header and the schema page stay intact, so the file still opens.
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    first, last = len(data) // page // 3, 2 * len(data) // page // 3
    assert first >= 1
    data[first * page:last * page] = random.Random(3).randbytes((last - first) * page)
    path.write_bytes(bytes(data))
    for command in READ_COMMANDS:
        result = protolab("results", *command, "--db", str(path))
        line = one_clear_line(result)
        assert f"cannot read {path}" in line, command
        assert "malformed" in line
        assert ".recover" in line  # what to do about it
        assert result.stdout == "", command  # no half an export


@pytest.mark.parametrize("kind", ["zero-byte", "sqlite without tables"])
def test_read_only_commands_leave_an_empty_file_as_it_is(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "empty.db"
    if kind == "zero-byte":
        path.write_bytes(b"")
    else:
        db = sqlite3.connect(path)
        db.execute("VACUUM")  # a valid SQLite file with no tables
        db.close()
    before = path.read_bytes()
    for command in READ_COMMANDS:
        line = one_clear_line(protolab("results", *command, "--db", str(path)))
        assert f"{path} is empty: it holds no protolab results" in line
        assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["empty.db"]  # no -wal, no -shm either


@pytest.mark.parametrize("target", ["a directory", "under a missing directory",
                                    "under a file", "in a read-only directory"])
def test_export_to_an_unwritable_path_is_one_clear_line(
    db: Path, tmp_path: Path, target: str
) -> None:
    out = {
        "a directory": tmp_path,
        "under a missing directory": tmp_path / "missing" / "deeper" / "run.csv",
        "under a file": tmp_path / "file.txt" / "run.csv",
        "in a read-only directory": tmp_path / "locked" / "run.csv",
    }[target]
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "locked").mkdir(mode=0o555)
    wrapper: tuple[str, ...] = ()
    if target == "in a read-only directory" and os.access(out.parent, os.W_OK):
        # Root writes through permission bits; without CAP_DAC_OVERRIDE it does not.
        wrapper = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")
        if shutil.which("setpriv") is None or subprocess.run(
            [*wrapper, "true"], capture_output=True, check=False
        ).returncode != 0:
            pytest.skip("root, and setpriv cannot drop CAP_DAC_OVERRIDE here")
    line = one_clear_line(protolab("results", "export", "1", "--out", str(out), "--db", str(db),
                                   wrapper=wrapper))
    assert f"cannot write {out}" in line
    assert not (tmp_path / "missing").exists()  # a mistyped path makes no directories


def test_open_load_latency_is_the_same_everywhere(tmp_path: Path) -> None:
    # Open load: every request was due 0.5 ms before it was sent. TTFB counts from when it
    # was due (protolab.core.latency), 1.2 .. 2.0 ms: p50 1.6 ms; from the send it would be
    # 1.1 ms. Values under 2.048 ms are exact in the HDR histogram, so the summary's p50
    # and the comparison's median are the same number, not two approximations of it.
    suite = parse_suite({"variant": [{"protocol": "h2"}], "repetitions": 1, "warmup": 0})
    (cell,) = expand(suite)
    records = []
    for i, ttfb_us in enumerate((1200, 1400, 1600, 1800, 2000)):
        due = 10_000 * MS + i * 100 * MS
        records.append(record(i, intended_ns=due, start_ns=due + 500_000,
                              first_byte_ns=due + ttfb_us * 1000,
                              done_ns=due + (ttfb_us + 300) * 1000))
    path = tmp_path / "open.db"
    with ResultsStore(path) as store:
        run = store.begin_run("open", manifest())
        cell_id = store.add_cell(run, cell.index, cell.params(suite))
        store.add_samples(cell_id, records, repetition=0, warmup=False)
        store.finish_cell(cell_id, "ok")
        store.finish_run(run, "complete")
        stored = store.samples(cell_id)
    summary = summarize_cell(suite, cell, {0: stored})
    assert summary.ttfb is not None
    assert summary.ttfb.p50 == pytest.approx(1.6)

    show = protolab("results", "show", "1", "--db", str(path))
    assert show.returncode == 0, show.stderr
    (row,) = [line for line in show.stdout.splitlines() if "h2 tls1.3 cubic" in line]
    assert row.split()[5] == "1.6"  # the TTFB median column
    assert "1.1 (" not in show.stdout
    shown = json.loads(protolab("results", "show", "1", "--json", "--db", str(path)).stdout)
    assert shown["cells"][0]["ttfb_ms"]["p50"] == pytest.approx(1.6)

    compare = protolab("results", "compare", "1", "1", "--db", str(path))
    assert compare.returncode == 0, compare.stderr
    (row,) = [line for line in compare.stdout.splitlines() if "h2 tls1.3 cubic" in line]
    assert row.split()[4:6] == ["1.6", "1.00"]  # TTFB A's median, B/A

    csv_out = protolab("results", "export", "1", "--db", str(path))
    assert csv_out.returncode == 0, csv_out.stderr
    csv_ttfb = [float(r["ttfb_ms"]) for r in csv.DictReader(io.StringIO(csv_out.stdout))]
    json_out = protolab("results", "export", "1", "-f", "json", "--db", str(path))
    assert json_out.returncode == 0, json_out.stderr
    json_ttfb = [s["ttfb_ms"] for s in json.loads(json_out.stdout)["cells"][0]["samples"]]
    assert statistics.median(csv_ttfb) == pytest.approx(1.6)
    assert statistics.median(json_ttfb) == pytest.approx(1.6)


def test_show_names_the_cpu_bound_parts_in_notes_and_json(tmp_path: Path) -> None:
    path = tmp_path / "cpu.db"
    with ResultsStore(path) as store:
        run = store.begin_run("cpu", manifest())
        for index, parts in enumerate(((), ("client",), ("server", "forwarder"))):
            cell = store.add_cell(run, index, {"label": f"cell{index}"})
            store.add_samples(cell, [record(i) for i in range(3)], 0, False)
            store.finish_cell(cell, "ok", cpu=CpuTimes(0.9, 0.95, 0.99, saturated=bool(parts),
                                                       saturated_parts=parts))
        store.finish_run(run, "complete")
    show = protolab("results", "show", "1", "--db", str(path))
    assert show.returncode == 0, show.stderr
    rows = {line.split()[1]: line for line in show.stdout.splitlines()
            if line.split()[1:2] and line.split()[1].startswith("cell")}
    assert "CPU-bound" not in rows["cell0"]
    assert "CPU-bound: client" in rows["cell1"]
    assert "CPU-bound: server,forwarder" in rows["cell2"]
    cells = json.loads(protolab("results", "show", "1", "--json", "--db", str(path)).stdout)[
        "cells"]
    assert [c["cpu"]["saturated_parts"] for c in cells] == [[], ["client"],
                                                             ["server", "forwarder"]]
    assert [c["cpu"]["saturated"] for c in cells] == [False, True, True]
    assert cells[1]["cpu"]["server"] == pytest.approx(0.95)


def show_80(path: Path) -> list[str]:
    result = subprocess.run([sys.executable, "-m", "protolab", "results", "show", "1", "--db",
                             str(path)], capture_output=True, text=True, timeout=TIMEOUT,
                            check=False, env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    table = lines[lines.index(next(line for line in lines if "cells of run" in line)):]
    assert all(len(line) <= 80 for line in table), table
    return table


@pytest.mark.parametrize("swept", [False, True], ids=["one trace", "a trace per cell"])
def test_show_gives_a_trace_links_capacity_within_80_columns(tmp_path: Path,
                                                               swept: bool) -> None:
    # One delivery opportunity every millisecond: 1500 bytes/ms = 12 Mbit/s in every window.
    steady = tmp_path / "steady.down"
    steady.write_text("".join(f"{ms}\n" for ms in range(1, 1001)))
    traces = [str(steady), "cellular.down"] if swept else [str(steady)]
    suite = parse_suite({"variant": [{"protocol": "h2"}, {"protocol": "h3"}],
                         "link": {"overrides": {"delay": "10ms"},
                                  "sweep": {"trace_down": traces}},
                         "repetitions": 1, "warmup": 0})
    path = tmp_path / "trace.db"
    with ResultsStore(path) as store:
        run = store.begin_run("traced", manifest())
        for cell in expand(suite):
            cell_id = store.add_cell(run, cell.index, cell.params(suite))
            store.add_samples(cell_id, [record(i) for i in range(3)], 0, False)
            store.finish_cell(cell_id, "ok")
        store.finish_run(run, "complete")
        cellular = next(c.params(suite)["link_capacity"]["down"] for c in expand(suite)
                        if c.link_point.get("trace_down") == "cellular.down") if swept else None
    table = show_80(path)
    header = next(line for line in table if "TTFB" in line)
    text = "".join("".join(table).split())  # the caption wraps: compare without spaces
    assert "p10–p90" in text  # the caption says what the numbers are
    if not swept:  # the same for every cell: said once, in the caption
        assert "notes" not in header
        assert text.count("down12(12–12)Mbit/s") == 1
        assert "tracecapacitydown12(12–12)Mbit/s" in text
    else:  # per cell, in its notes: the steady trace's cells and the cellular ones differ
        assert cellular is not None
        assert header.split()[:3] == ["#", "cell", "trace_down"]  # the header whole
        assert str(tmp_path) not in text  # the trace file by its name, not its path
        start = header.index("notes")
        body = table[table.index(header) + 2:]
        notes = "".join("".join(line[start:] for line in body).split())  # the column alone
        assert notes.count("down12(12–12)Mbit/s") == 2
        assert notes.count(f"down{cellular['mean_mbps']:.3g}(") == 2


def test_a_store_from_before_the_parts_were_named_reads_and_gains_the_column(
        tmp_path: Path) -> None:
    # An early schema-6 store (no cells.saturated_parts) with a CPU-bound cell: read-only it
    # says so without naming a part and stays as it is; a writer adds the column.
    path = tmp_path / "early6.db"
    with ResultsStore(path) as store:
        run = store.begin_run("early", manifest())
        cell = store.add_cell(run, 0, {"label": "busy"})
        store.add_samples(cell, [record(i) for i in range(3)], 0, False)
        store.finish_cell(cell, "ok", cpu=CpuTimes(1.0, saturated=True))
        store.finish_run(run, "complete")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("ALTER TABLE cells DROP COLUMN saturated_parts")
    db.close()
    before = path.read_bytes()
    show = protolab("results", "show", "1", "--db", str(path))
    assert show.returncode == 0, show.stderr
    assert "CPU-bound: part not recorded" in show.stdout
    shown = json.loads(protolab("results", "show", "1", "--json", "--db", str(path)).stdout)
    assert shown["cells"][0]["cpu"]["saturated"] is True
    assert shown["cells"][0]["cpu"]["saturated_parts"] == []
    assert path.read_bytes() == before
    with ResultsStore(path) as store:
        cell2 = store.add_cell(run, 1, {"label": "named"})
        store.finish_cell(cell2, "ok", cpu=CpuTimes(1.0, saturated=True,
                                                    saturated_parts=("client",)))
        assert [c.cpu.saturated_parts for c in store.cells(run) if c.cpu] == [(), ("client",)]


def test_show_says_when_the_link_left_deliveries_late(tmp_path: Path) -> None:
    """A cell during which the forwarder was held up (the machine stalled) carries it in
    its notes, in `results show` as in the report: its latencies inherit the stall."""
    path = tmp_path / "late.db"
    with ResultsStore(path) as store:
        run = store.begin_run("late", manifest())
        for index, late in enumerate((0, 7)):
            cell = store.add_cell(run, index, {"label": f"cell{index}"})
            store.add_samples(cell, [record(i) for i in range(3)], 0, False)
            store.add_metric(cell, "link_late_deliveries", 5000, "packets")
            store.add_metric(cell, "link_late_1ms", late, "packets")
            store.add_metric(cell, "link_late_worst_us", 4096 if late else 128, "us")
            store.finish_cell(cell, "ok")
        store.finish_run(run, "complete")
    show = protolab("results", "show", "1", "--db", str(path))
    assert show.returncode == 0, show.stderr
    text = " ".join(show.stdout.split())
    assert "link left 7 of 5,000 deliveries ≥ 1 ms late (worst < 4.1 ms)" in text
    assert text.count("deliveries ≥ 1 ms late") == 1  # cell0's link was on time
    report = tmp_path / "report.html"
    made = protolab("report", "1", "--db", str(path), "--out", str(report))
    assert made.returncode == 0, made.stderr
    html = report.read_text()
    assert "link left 7 of 5,000 deliveries ≥ 1 ms late (worst &lt; 4.1 ms)" in html
