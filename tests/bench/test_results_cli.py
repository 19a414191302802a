"""`protolab results ...` as a user runs it, on a database filled through the store API."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from protolab.bench.store import CpuTimes, ResultsStore, manifest
from tests.bench.test_store import record
from tests.helpers import TIMEOUT


def protolab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "protolab", *args],
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
    assert "protocol=h2 rtt_ms=50 repetition=0" in out  # in the order the runner gave
    assert "159.04" in out  # h2 TTFB: nearest-rank p50 of 150..169 ms, HDR bucket middle
    assert "CPU saturated" in out
    assert "ttfb_rtts=2 RTT" in out


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
    assert "1.47 [" in result.stdout  # h2 TTFB medians 234.5 / 159.5


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
