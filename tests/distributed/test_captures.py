"""Captures on Dask: a suite with `capture = true` through two `protolab worker`s keeps
the same files, where a local run keeps them, and gives the same head-of-line analysis;
a capture above the per-task limit stays behind with its reason recorded; what a worker
sends is never written outside its repetition's folder."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from protolab.bench.runner import ClientResult, RanOn, RepResult, RepTask
from protolab.bench.session import task_run
from protolab.bench.suite import expand, parse_suite
from protolab.core.stats import median
from protolab.distributed import captures
from protolab.errors import LabError
from protolab.store import ResultsStore
from tests.distributed.conftest import REPO, Cluster
from tests.helpers import TIMEOUT

RTT_MS = 100.0
# tests/hol/test_hol_link.py's experiment: 4 x 100 KB at 10 Mbit/s, 100 ms RTT, the 40th
# server->client packet dropped. Large delays so that a loaded machine cannot flip it:
# an HTTP/2 stream with bytes behind that drop waits ~1 RTT for it, an HTTP/3 stream only
# for its own lost data. Which streams had bytes behind it depends on timing, so the
# runs are held to that shape and to each other where it is deterministic.
ONE_DROP = """name = "hol-one-drop"
warmup = 0
repetitions = 1
capture = true
[link]
overrides = { delay = "50ms", rate = "10mbit", queue = "100", drop = "down:40" }
[workload]
paths = ["/bytes/102400"]
count = 4
concurrency = 4
record_arrivals = true
[[variant]]
label = "h2-rr"
protocol = "h2"
data_frame = 4096
[[variant]]
label = "h3-rr"
protocol = "h3"
"""


def _bench(tmp_path: Path, name: str, *extra: str) -> tuple[Path, Path]:
    suite = tmp_path / "one-drop.toml"
    suite.write_text(ONE_DROP)
    db, out = tmp_path / f"{name}.db", tmp_path / name
    result = subprocess.run(
        [sys.executable, "-m", "protolab", "bench", str(suite), "--json", "--db", str(db),
         "--out", str(out), *extra],
        capture_output=True, text=True, cwd=REPO, timeout=TIMEOUT * 6, check=False)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert json.loads(result.stdout)["status"] == "complete"
    (run_dir,) = out.iterdir()
    return db, run_dir / "captures"


def _files(root: Path) -> dict[str, int]:
    """Every file under `root` with its mode; qlog files by their folder (aioquic names
    them after the connection's random ID)."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            relative = path.relative_to(root)
            name = (relative.parent / "*.qlog").as_posix() if path.suffix == ".qlog" \
                else relative.as_posix()
            out[name] = stat.S_IMODE(path.stat().st_mode)
    return out


def _hol(db: Path) -> dict[str, dict[str, Any]]:
    with ResultsStore(db, create=False) as store:
        run = store.runs()[-1]
        out = {}
        for cell in store.cells(run.id):
            streams = [s for _, s in store.hol_streams(cell.id)]
            out[str(cell.params["label"])] = {
                "status": cell.status,
                "drops": [(d.reason, d.direction, d.packet) for _, d in store.hol_drops(cell.id)
                          if d.direction == "down"],
                "streams": sorted(s.stream_id for s in streams),
                "bytes": sum(p.length for _, p in store.hol_pieces(cell.id)),
                # Streams whose bytes crossed while another stream's lost data was
                # missing (which depends on timing), and those whose own data was lost.
                "others_ms": [s.others_ns / 1e6 for s in streams
                              if s.exposed and not s.lost_data],
                "own_ms": [s.own_ns / 1e6 for s in streams if s.lost_data],
                "metrics": {m.name: m.value for m in store.metrics(cell.id)},
                "tasks": store.cell_tasks(cell.id),
            }
        return out


@pytest.mark.netem
@pytest.mark.slow
def test_captures_come_back_from_the_workers_as_a_local_run_keeps_them(
        cluster: Cluster, tmp_path: Path) -> None:
    workers = [cluster.add_worker("w1"), cluster.add_worker("w2")]
    remote_db, remote = _bench(tmp_path, "remote", "--scheduler", cluster.address)
    local_db, local = _bench(tmp_path, "local")

    # The same files in the same places, the key log readable by its owner alone.
    files = _files(remote)
    assert files == _files(local)
    assert {"cell-0-h2-rr-rep-0/link.pcap", "cell-0-h2-rr-rep-0/keylog.txt",
            "cell-1-h3-rr-rep-0/link.pcap", "cell-1-h3-rr-rep-0/keylog.txt",
            "cell-1-h3-rr-rep-0/qlog/*.qlog"} <= set(files)
    assert all(mode == 0o600 for name, mode in files.items() if name.endswith("keylog.txt"))
    assert not list(remote.rglob(captures.SKIPPED_NOTE))

    # The same HOL analysis: the drop, the streams, every byte, the shape of the delays.
    hol, local_hol = _hol(remote_db), _hol(local_db)
    assert set(hol) == set(local_hol) == {"h2-rr", "h3-rr"}
    for label in hol:
        cell, there = hol[label], local_hol[label]
        assert cell["status"] == there["status"] == "ok"
        assert cell["drops"] == there["drops"] == [("droplist", "down", 40)]
        assert cell["streams"] == there["streams"]
        assert len(cell["streams"]) == 4
        assert cell["bytes"] == there["bytes"] == 4 * 102_400
        assert {t.worker for t in cell["tasks"]} <= {w.address for w in workers}
        assert all(t.error is None for t in cell["tasks"])
    for cell in (hol["h2-rr"], local_hol["h2-rr"]):  # HTTP/2: the others wait ~1 RTT
        assert all(ms >= 0.7 * RTT_MS for ms in cell["others_ms"])
    for cell in (hol["h3-rr"], local_hol["h3-rr"]):  # HTTP/3: the others do not wait
        assert all(ms < 0.1 * RTT_MS for ms in cell["others_ms"])
    for label in hol:  # the streams that lost data wait for it, there as here
        own, local_own = hol[label]["own_ms"], local_hol[label]["own_ms"]
        assert own
        assert local_own
        assert all(ms >= 0.4 * RTT_MS for ms in own + local_own)
        assert abs(median(own) - median(local_own)) < 0.5 * RTT_MS


def _write(tmp_path: Path, files: list[dict[str, Any]]) -> str | None:
    return captures.write(tmp_path / "rep", {"files": files, "bytes": 0, "skipped": None})


def test_a_capture_above_the_limit_stays_behind_with_its_reason(tmp_path: Path) -> None:
    capture = tmp_path / "worker" / "cell-0-h2-rep-0"
    capture.mkdir(parents=True)
    (capture / "link.pcap").write_bytes(b"p" * 3000)
    (capture / "keylog.txt").write_bytes(b"k" * 100)
    shipped = captures.collect(capture, limit=2048)
    assert shipped["files"] == []
    here = tmp_path / "captures" / "cell-0-h2-rep-0"
    reason = captures.write(here, shipped, limit=2048)
    assert reason == "captures not shipped: 3100 bytes is above the 2048 bytes a task ships"
    assert [p.name for p in here.iterdir()] == [captures.SKIPPED_NOTE]
    assert (here / captures.SKIPPED_NOTE).read_text().strip() == reason

    (capture / "keylog.txt").chmod(0o644)  # on arrival a key log is 0600 whatever it was
    shipped = captures.collect(capture, limit=4096)
    assert {f["path"]: f["mode"] for f in shipped["files"]} == {
        "keylog.txt": 0o644, "link.pcap": stat.S_IMODE((capture / "link.pcap").stat().st_mode)}
    assert captures.write(here, shipped, limit=4096) is None
    assert (here / "link.pcap").read_bytes() == b"p" * 3000
    assert stat.S_IMODE((here / "keylog.txt").stat().st_mode) == 0o600
    with pytest.raises(LabError, match="above the 1024 bytes limit"):
        captures.write(tmp_path / "again", shipped, limit=1024)  # a worker that lies
    assert not (tmp_path / "again").exists()


@pytest.mark.parametrize("path", ["../escape.pcap", "/etc/passwd", "qlog/../../x", ".hidden",
                                  "", "a\\b"])
def test_a_worker_cannot_write_outside_its_repetitions_folder(tmp_path: Path,
                                                              path: str) -> None:
    with pytest.raises(LabError, match="outside its repetition's folder"):
        _write(tmp_path, [{"path": path, "mode": 0o644, "data": b"x"}])
    assert not list(tmp_path.rglob("*"))
    with pytest.raises(LabError, match="do not decode"):
        _write(tmp_path, [{"path": "link.pcap", "mode": "0644", "data": b"x"}])


def test_why_a_capture_stayed_behind_is_stored_with_its_repetition(tmp_path: Path) -> None:
    suite = parse_suite(tomllib.loads(ONE_DROP))
    task = RepTask(expand(suite)[0], 0, False, suite.workload, suite.timeout_s)
    note = "captures not shipped: 80.0 MiB is above the 64.0 MiB a task ships"
    ran = RanOn("tcp://127.0.0.1:1", {}, 1.0, 2.0)
    stored = task_run(RepResult(task, ClientResult(), ran, note=note))
    assert (stored.status, stored.error) == ("ok", note)
    with ResultsStore(tmp_path / "lab.db") as store:
        run = store.begin_run("s", {})
        cell = store.add_cell(run, 0, {})
        store.add_samples(cell, [], 0, False, stored)
        assert [(t.status, t.error) for t in store.cell_tasks(cell)] == [("ok", note)]
