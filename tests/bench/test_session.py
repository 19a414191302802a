"""A bench run end to end: store contents, open load, failing cells, Ctrl-C."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from protolab.bench.runner import Reporter
from protolab.bench.session import run_bench
from protolab.bench.suite import parse_suite
from protolab.core.latency import late_sends, total_ms
from protolab.core.record import RequestRecord
from protolab.errors import StoreError
from protolab.report.run_charts import draw_charts
from protolab.store import ResultsStore

pytestmark = [pytest.mark.netem, pytest.mark.slow, pytest.mark.usefixtures("needs_link")]




def suite(**data: Any) -> Any:
    return parse_suite({"warmup": 1, "repetitions": 2, **data})


def test_raw_samples_metrics_and_charts_land_in_the_store(tmp_path: Path) -> None:
    s = suite(variant=[{"protocol": "h2"}, {"protocol": "h3"}],
              link={"overrides": {"delay": "10ms"}, "sweep": {"loss": ["0%", "1%"]}},
              workload={"paths": ["/bytes/20000"], "count": 5, "concurrency": 5,
                        "record_arrivals": True})
    with ResultsStore(tmp_path / "lab.db") as store:
        result = run_bench(s, store, tmp_path / "out")
        run = store.run(result.run_id)
        cells = store.cells(result.run_id)
        samples = [store.stored_samples(c.id, include_warmup=True) for c in cells]
        metrics = {m.name for m in store.metrics(cells[0].id)}
        store_metrics = {c.id: store.metrics(c.id) for c in cells}
    assert result.status == "complete"
    assert run.status == "complete"
    assert run.manifest["settings"]["suite"] == s.name
    assert run.manifest["packages"]["aioquic"]
    assert len(cells) == 4
    assert all(c.status == "ok" for c in cells)
    # 1 warm-up + 2 measured repetitions of 5 requests, every one kept raw.
    assert all(len(per_cell) == 15 for per_cell in samples)
    assert all(sum(x.warmup for x in per_cell) == 5 for per_cell in samples)
    assert all(x.record.arrivals for per_cell in samples for x in per_cell)
    assert {"total_p50", "total_p99", "goodput", "link_down_dropped_loss"} <= metrics
    # The link's own error during the cell: a 10 ms link schedules every packet.
    assert {"link_late_deliveries", "link_late_1ms", "link_late_worst_us"} <= metrics
    assert all(s.lateness["deliveries"] > 0 for s in result.summaries)
    # 10 ms and no loss: both directions only delay, so both move TCP super-packets; 1%
    # loss (both ways) decides per wire packet, so neither does.
    offloaded = {c.index: m.value for c in cells for m in store_metrics[c.id]
                 if m.name == "link_offloaded_directions"}
    assert sorted(offloaded.values()) == [0, 0, 2, 2]
    assert all(c.cpu is not None and c.cpu.client and c.cpu.server for c in cells)
    assert result.out_dir is not None
    names = {p.name for p in draw_charts(s, result.cells, result.measured, result.out_dir)}
    assert {"cdf-0.png", "cdf-1.svg", "percentiles-vs-loss.png"} <= names
    assert any(n.startswith("waterfall-") for n in names)


def test_open_load_counts_latency_from_the_intended_send_time(tmp_path: Path) -> None:
    # One HTTP/1.1 connection, 200 ms per response, 10 requests due at 20/s: far more than
    # the connection serves, so requests queue. An open load keeps sending on schedule
    # and the queueing shows in the latency; a closed loop would have slowed down instead.
    s = suite(warmup=0, repetitions=1,
              variant=[{"protocol": "h1", "connections": 1}],
              workload={"paths": ["/delay/200/bytes/10"], "count": 10, "load": "open",
                        "rate": 20})
    with ResultsStore(tmp_path / "lab.db") as store:
        result = run_bench(s, store, tmp_path / "out")
        cell = store.cells(result.run_id)[0]
        records = store.samples(cell.id)
        late = {m.name: m.value for m in store.metrics(cell.id)}["late_sends"]
    intended = sorted(r.intended_ns or 0 for r in records)
    gaps = [(b - a) / 1e6 for a, b in zip(intended, intended[1:], strict=False)]
    assert all(abs(g - 50) < 1 for g in gaps)  # due every 50 ms, exactly
    assert late == late_sends(records)  # a busy machine may send a few late; they are counted
    latencies = sorted(v for r in records if (v := total_ms(r)) is not None)
    assert latencies[0] < 400  # the first is served at once
    assert latencies[-1] > 1000  # the last waited behind nine 200 ms responses


def test_late_sends_are_counted() -> None:
    on_time = RequestRecord(protocol="h2", method="GET", path="/", start_ns=1_000_000,
                            connection_id=1, new_connection=False, intended_ns=900_000)
    late = dataclasses.replace(on_time, start_ns=5_000_000)
    closed = dataclasses.replace(on_time, intended_ns=None, start_ns=9_000_000)
    assert late_sends([on_time, late, closed]) == 1


def test_a_failing_cell_is_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    s = suite(warmup=0, repetitions=1, timeout_s=1,
              variant=[{"label": "slow", "protocol": "h2"}, {"label": "fast", "protocol": "h3"}],
              workload={"paths": ["/delay/3000/bytes/1"]})
    s2 = suite(warmup=0, repetitions=1, timeout_s=5, variant=[{"protocol": "h2"}])
    with ResultsStore(tmp_path / "lab.db") as store:
        result = run_bench(s, store, tmp_path / "out")
        cells = store.cells(result.run_id)
        assert result.status == "complete"
        assert [c.status for c in cells] == ["timeout", "timeout"]
        assert all("timeout" in (c.error or "") for c in cells)
        again = run_bench(s2, store, tmp_path / "out")
        assert store.cells(again.run_id)[0].status == "ok"


class _StopAfter(Reporter):
    def __init__(self, steps: int) -> None:
        self.left = steps

    def step(self, description: str) -> None:
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt


def test_ctrl_c_keeps_what_finished_and_marks_the_run(tmp_path: Path) -> None:
    s = suite(warmup=0, repetitions=3, variant=[{"protocol": "h2"}, {"protocol": "h3"}],
              workload={"paths": ["/bytes/100"], "count": 2})
    with ResultsStore(tmp_path / "lab.db") as store:
        result = run_bench(s, store, tmp_path / "out", reporter=_StopAfter(3))
        run = store.run(result.run_id)
        kept = sum(len(store.samples(c.id)) for c in store.cells(result.run_id))
    assert result.status == "interrupted"
    assert run.status == "interrupted"
    assert kept == 3 * 2  # three cell repetitions finished before Ctrl-C


def test_websocket_and_grpc_variants_run_through_the_link(tmp_path: Path) -> None:
    echo = suite(warmup=0, repetitions=1, link={"overrides": {"delay": "10ms"}},
                 variant=[{"label": "ws-echo", "protocol": "ws"},
                          {"label": "h2-echo", "protocol": "h2"}],
                 workload={"paths": ["/echo?count=3"], "count": 2, "body_bytes": 512})
    unary = suite(warmup=0, repetitions=1, link={"overrides": {"delay": "10ms"}},
                  variant=[{"label": "grpc-unary", "protocol": "grpc"}],
                  workload={"paths": ["/Unary?size=2048"], "count": 3})
    with ResultsStore(tmp_path / "lab.db") as store:
        echo_run = run_bench(echo, store, tmp_path / "out")
        unary_run = run_bench(unary, store, tmp_path / "out")
        cells = store.cells(echo_run.run_id)
        ws, h2 = (store.samples(c.id) for c in cells)
        grpc = store.samples(store.cells(unary_run.run_id)[0].id)
    assert [c.status for c in cells] == ["ok", "ok"]
    assert all(r.ok and len(r.messages) == 3 for r in ws)  # three echoed messages each
    assert all(r.ok and r.body_bytes == 512 for r in h2)  # POST /echo of the same body
    assert all(r.ok and r.body_bytes >= 2048 for r in grpc)
    assert ws[0].upgraded_ns is not None  # the upgrade, timed on the connection's first use
    assert grpc[0].upgraded_ns is not None  # the channel becoming ready


def test_a_cell_is_finished_as_soon_as_its_samples_are_stored(tmp_path: Path) -> None:
    # Ctrl-C after the first of two cells: that cell has every sample, so it is finished
    # (status, end time, CPU) although the run was interrupted.
    s = suite(warmup=0, repetitions=1, variant=[{"protocol": "h2"}, {"protocol": "h1"}],
              workload={"paths": ["/bytes/100"], "count": 2})
    with ResultsStore(tmp_path / "lab.db") as store:
        result = run_bench(s, store, tmp_path / "out", reporter=_StopAfter(1))
        first, second = store.cells(result.run_id)
    assert result.status == "interrupted"
    assert (first.status, first.samples) == ("ok", 2)
    assert first.ended_at is not None
    assert first.cpu is not None
    assert first.cpu.client > 0
    assert second.status != "ok"
    assert second.samples == 0


def test_two_runs_never_share_a_chart_folder(tmp_path: Path) -> None:
    from protolab.bench.session import out_dir_for

    first = out_dir_for(tmp_path / "out", 1)
    second = out_dir_for(tmp_path / "out", 1)  # run 1 of another database
    assert first != second
    assert first.is_dir()
    assert second.is_dir()


def test_sigterm_stops_a_run_as_ctrl_c_does(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    from tests.helpers import TIMEOUT

    suite_file = tmp_path / "slow.toml"
    suite_file.write_text(
        'name = "slow"\nrepetitions = 20\nwarmup = 0\n[link]\noverrides = { delay = "25ms" }\n'
        '[workload]\npaths = ["/bytes/100"]\ncount = 2\nfresh_connection = true\n'
        '[[variant]]\nprotocol = "h1"\ntls = false\n[[variant]]\nprotocol = "h2"\n')
    db = tmp_path / "lab.db"
    proc = subprocess.Popen([sys.executable, "-m", "protolab", "bench", str(suite_file),
                             "--db", str(db), "--out", str(tmp_path / "out")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + TIMEOUT * 3
        while time.monotonic() < deadline:  # bounded: until the first samples are stored
            if db.exists():
                try:
                    with ResultsStore(db, create=False) as store:
                        runs = store.runs()
                        if runs and any(c.samples for c in store.cells(runs[0].id)):
                            break
                except StoreError:
                    pass  # the run is creating the file: its schema is not there yet
            time.sleep(0.1)
        else:
            pytest.fail("no samples were stored in time")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=TIMEOUT * 3)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    assert "Traceback" not in stderr
    with ResultsStore(db, create=False) as store:
        run = store.runs()[0]
        cells = store.cells(run.id)
    assert run.status == "interrupted"
    assert run.ended_at is not None
    assert all(c.status in ("interrupted", "ok") for c in cells)
    assert sum(c.samples for c in cells) > 0  # what finished is kept


def test_capture_keeps_each_cells_pcap_keys_and_qlog(tmp_path: Path) -> None:
    import stat

    from protolab.trace.keylog import load_keylog
    from protolab.trace.pcapfile import read_capture

    s = suite(warmup=0, repetitions=1, variant=[{"protocol": "h2"}, {"protocol": "h3"}],
              link={"overrides": {"delay": "5ms"}}, workload={"paths": ["/bytes/2000"]})
    with ResultsStore(tmp_path / "lab.db") as store:
        result = run_bench(s, store, tmp_path / "out", capture=True)
    assert result.status == "complete"
    assert result.out_dir is not None
    folders = sorted((result.out_dir / "captures").iterdir())
    assert [f.name for f in folders] == ["cell-0-h2-rep-0", "cell-1-h3-rep-0"]
    for folder in folders:
        capture = read_capture((folder / "link.pcap").read_bytes())
        assert len(capture.frames) >= 6  # the handshake and the response crossed the link
        assert not capture.problems
        keylog = folder / "keylog.txt"
        assert stat.S_IMODE(keylog.stat().st_mode) == 0o600  # secrets
        assert load_keylog(keylog).secrets
    assert list((folders[1] / "qlog").glob("*.qlog"))  # QUIC: qvis opens it
