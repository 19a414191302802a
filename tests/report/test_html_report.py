"""The HTML report as a reader meets it: written by `bench` after a real run over the
emulated link and opened in a real headless Chromium from file:// (no console error, no
request that is not file://, every chart drawn, one row per claim and per cell, sorting
by a column header); and `protolab report` on what users get wrong, and across two runs.

The browser is Debian's chromium driven by playwright-core from npm
(tests/interop/node/report_check.js); without either, those tests skip and say why.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from protolab.netem.privileges import missing
from protolab.store import CpuTimes, ResultsStore, manifest
from tests.bench.test_store import record
from tests.helpers import TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "tests" / "interop" / "node"
SCREENSHOTS = ROOT / "results"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

# Three handshake kinds at two RTTs, fresh connections: CDFs, percentiles vs delay, TTFB
# vs RTT with slopes, and claims (a slope and a comparison) to judge. About 5 s here.
HANDSHAKES = """
name = "report-handshakes"
description = "a tiny GET on a fresh connection, three handshake kinds, two RTTs"
expected = "TTFB 2 RTT (cleartext, HTTP/3), 3 RTT (TLS 1.3)"
repetitions = 2
warmup = 0
timeout_s = 30
[link]
profile = "loopback"
sweep = { delay = ["5ms", "10ms"] }
[workload]
paths = ["/bytes/100"]
count = 2
fresh_connection = true
[[variant]]
label = "h1-clear"
protocol = "h1"
tls = false
[[variant]]
label = "h2-tls13"
protocol = "h2"
[[variant]]
label = "h3"
protocol = "h3"
[[claim]]
id = "h1-clear-2rtt"
text = "TCP + cleartext HTTP/1.1: first byte after 2 RTT"
source = "RFC 9293; DESIGN.md"
metric = "ttfb"
relation = "slope"
a = "h1-clear"
value = 2
tolerance = 0.25
[[claim]]
id = "h3-beats-tls13"
text = "QUIC folds the transport and TLS handshakes: HTTP/3 first byte before TLS 1.3's"
source = "RFC 9000 §7"
metric = "ttfb"
relation = "faster"
a = "h3"
b = "h2-tls13"
by = 0.05
"""

# Four parallel streams with one deterministic drop, captured: waterfalls, per-stream
# HOL with the drop marked, handshake ladders, and the captures folder. About 4 s here.
CAPTURED = """
name = "report-captured"
description = "four parallel 30 KB responses, one dropped packet, captured"
expected = "HTTP/2 stalls every stream on the drop; HTTP/3 only the one that lost data"
repetitions = 1
warmup = 0
timeout_s = 30
capture = true
[link]
profile = "loopback"
overrides = { delay = "10ms", rate = "20mbit", queue = "100" }
sweep = { drop = ["down:12"] }
[workload]
paths = ["/bytes/30000"]
count = 4
concurrency = 4
record_arrivals = true
[[variant]]
label = "h2"
protocol = "h2"
[[variant]]
label = "h3"
protocol = "h3"
"""


def protolab(*args: str, cwd: Path | None = None, timeout: float = TIMEOUT,
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "protolab", *args], capture_output=True, text=True,
        timeout=timeout, check=False, cwd=cwd,
        env={**os.environ, "COLUMNS": "100", "PYTHONPATH": str(ROOT)})


def bench(tmp: Path, name: str, suite: str) -> tuple[Path, Path]:
    """A real run of `suite` through `protolab bench`: its database and its report."""
    lacking = missing()
    if lacking:
        pytest.skip(f"the emulated link cannot be built here: {'; '.join(lacking)}")
    (tmp / f"{name}.toml").write_text(suite)
    done = protolab("bench", f"{name}.toml", "--db", "lab.db", "--out", "out", cwd=tmp,
                    timeout=TIMEOUT * 6)
    assert done.returncode == 0, done.stdout + done.stderr
    printed = re.search(r"^report: (\S+)$", done.stdout, re.M)
    assert printed, done.stdout
    report = tmp / printed.group(1)
    assert report == tmp / "out" / "run-1" / "report.html"
    assert report.is_file()
    return tmp / "lab.db", report


@pytest.fixture(scope="module")
def handshakes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return bench(tmp_path_factory.mktemp("handshakes"), "handshakes", HANDSHAKES)


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return bench(tmp_path_factory.mktemp("captured"), "captured", CAPTURED)


def browse(report: Path, screenshot: Path, table: str, header: str) -> dict[str, Any]:
    """What headless Chromium met loading `report` (tests/interop/node/report_check.js)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node not installed (apt-get install nodejs; ./run test installs it)")
    if not (NODE_DIR / "node_modules" / "playwright-core" / "package.json").exists():
        pytest.skip(f"npm package playwright-core missing: run `npm ci` in {NODE_DIR} "
                    "(./run test does)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} missing (apt-get install chromium)")
    screenshot.parent.mkdir(exist_ok=True)
    done = subprocess.run(
        [node, "report_check.js", str(report), str(screenshot), table, header],
        capture_output=True, text=True, timeout=TIMEOUT * 3, cwd=NODE_DIR, check=False,
        env={**os.environ, "CHROMIUM": CHROMIUM})
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def check_loaded_clean(seen: dict[str, Any]) -> None:
    errors = [m for m in seen["console"] if m["type"] in ("error", "warning")]
    assert errors == [], errors
    assert seen["pageErrors"] == []
    assert seen["foreign"] == [], "the report asked for something beyond file://"
    assert seen["failed"] == []
    assert seen["requests"]
    assert all(u.startswith("file://") for u in seen["requests"])


def check_sorted(seen: dict[str, Any]) -> None:
    sort = seen["sort"]
    assert sort["column"] >= 0
    up, down = sort["ascending"], sort["descending"]
    assert (up["ariaSort"], down["ariaSort"]) == ("ascending", "descending")
    keys = [float(k) for k in up["keys"]]
    assert keys == sorted(keys)
    assert [float(k) for k in down["keys"]] == sorted(keys, reverse=True)
    assert sorted(up["order"]) == sorted(sort["before"])  # the same rows, reordered
    assert up["order"] != down["order"]  # distinct values: clicking again reverses


@pytest.mark.netem
@pytest.mark.slow
def test_a_bench_report_opens_offline_in_chromium(handshakes: tuple[Path, Path]) -> None:
    db, report = handshakes
    with ResultsStore(db, create=False) as store:
        cells = store.cells(1)
        verdicts = store.verdicts(1)
    assert len(cells) == 6
    assert len(verdicts) >= 2
    seen = browse(report, SCREENSHOTS / "report-screenshot.png", "cells-1", "TTFB p50 (ms)")
    check_loaded_clean(seen)
    assert seen["tables"]["cells-1"] == len(cells)
    assert seen["tables"]["verdicts-1"] == len(verdicts)
    kinds = [c["kind"] for c in seen["charts"]]
    assert {"cdf", "percentiles", "ttfb-rtt"} <= set(kinds)
    assert all(c["width"] > 100 and c["height"] > 100 for c in seen["charts"]), seen["charts"]
    assert all(c["title"] and len(c["caption"]) > 80 for c in seen["charts"])
    check_sorted(seen)
    assert (SCREENSHOTS / "report-screenshot.png").stat().st_size > 10_000
    # Units on every numeric column of the cell table.
    numeric = [h for h in seen["headers"]["cells-1"] if re.match(r"(TTFB|total|CPU)", h)]
    assert numeric
    assert all(re.search(r"\((ms|s|RTT)\)", h) for h in numeric), numeric


@pytest.mark.netem
@pytest.mark.slow
def test_a_captured_run_shows_hol_drops_ladders_and_links_its_captures(
        captured: tuple[Path, Path]) -> None:
    _, report = captured
    seen = browse(report, SCREENSHOTS / "report-captured-screenshot.png", "cells-1",
                  "total p50 (ms)")
    check_loaded_clean(seen)
    kinds = [c["kind"] for c in seen["charts"]]
    assert {"cdf", "waterfall", "hol", "ladder"} <= set(kinds), kinds
    assert all(c["width"] > 100 and c["height"] > 100 for c in seen["charts"]), seen["charts"]
    check_sorted(seen)
    page = report.read_text()
    links = re.findall(r'href="([^"#]+)"', page)
    assert "captures/" in links
    for link in links:  # every link is relative and leads to what was written beside it
        assert "://" not in link
        assert (report.parent / link).exists(), link
    assert (report.parent / "captures" / "cell-0-h2-rep-0" / "link.pcap").is_file()


@pytest.mark.netem
@pytest.mark.slow
def test_the_report_shows_the_numbers_results_show_prints(
        handshakes: tuple[Path, Path], tmp_path: Path) -> None:
    db, _ = handshakes
    shown = protolab("results", "show", "1", "--db", str(db), "--json")
    assert shown.returncode == 0, shown.stderr
    cells = json.loads(shown.stdout)["cells"]
    out = tmp_path / "again.html"
    done = protolab("report", "1", "--db", str(db), "--out", str(out))
    assert done.returncode == 0, done.stderr
    data = report_data(out)
    for from_show, from_report in zip(cells, data["runs"][0]["cells"], strict=True):
        for phase in ("ttfb_ms", "total_ms"):
            assert from_report[phase]["p50"] == pytest.approx(from_show[phase]["p50"])
            assert from_report[phase]["p99"] == pytest.approx(from_show[phase]["p99"])
            assert from_report[phase]["median_ci_low"] == pytest.approx(
                from_show[phase]["low"])
    assert {p.name for p in tmp_path.iterdir()} == {"again.html", "run-1.csv", "run-1.json"}


def report_data(path: Path) -> dict[str, Any]:
    page = path.read_text()
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>',
                      page, re.S)
    assert found
    data: dict[str, Any] = json.loads(found.group(1).replace("<\\/", "</"))
    return data


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two runs of the same cells through the store API: in the second, h2 is 1.5 times
    slower and h3 unchanged."""
    path = tmp_path_factory.mktemp("two") / "lab.db"
    with ResultsStore(path) as store:
        for scale in (1.0, 1.5):
            run = store.begin_run("pair", manifest(seeds={"link": 1}))
            for index, protocol in enumerate(("h2", "h3")):
                cell = store.add_cell(run, index, {"label": protocol, "link": {"delay": "25ms"}})
                base, factor = (150.0, scale) if protocol == "h2" else (100.0, 1.0)
                store.add_samples(cell, [record(i, ttfb_ms=base * factor + i,
                                                total_ms=base * factor + 5 + i)
                                         for i in range(20)], repetition=0, warmup=False)
                store.finish_cell(cell, "ok", cpu=CpuTimes(0.4, 0.3, 0.1))
            store.finish_run(run, "complete")
    return path


def test_two_runs_give_ratios_and_mark_what_got_worse(two_runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "pair.html"
    done = protolab("report", "2", "--baseline", "1", "--db", str(two_runs), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"report: {out}" in done.stdout
    page = out.read_text()
    rows = re.findall(r'<tr data-row="\d+" class="(\w+)"><td>(h\d)</td>(.*?)</tr>', page)
    assert {label: change for change, label, _ in rows} == {"h2": "worse", "h3": "same"}
    expected = (statistics.median(225.0 + i for i in range(20))
                / statistics.median(150.0 + i for i in range(20)))
    h2 = next(cells for _, label, cells in rows if label == "h2")
    assert f">{expected:.3f}<" in h2  # TTFB B/A, as results compare computes it
    data = report_data(out)
    assert [r["id"] for r in data["runs"]] == [1, 2]
    (comparison,) = data["comparisons"]
    assert (comparison["a"], comparison["b"]) == (1, 2)
    ratio = comparison["cells"][0]["ttfb"]["ratio"]
    assert ratio["ci_low"] > 1
    assert ratio["value"] == pytest.approx(expected)
    # Without a suite in the manifest there is nothing to chart; the page says so.
    assert "no charts: its manifest records no suite settings" in page
    for external in ("<script src", "<link", "@import", "url(http"):
        assert external not in page


@pytest.mark.parametrize(("args", "message"), [
    (("99",), "no run 99 in"),
    (("1", "--baseline", "42"), "no run 42 in"),
    (("1", "--db", "{tmp}/none.db"), "none.db"),
    (("1", "--out", "{tmp}/missing/deeper/r.html"), "does not exist"),
    (("1", "--out", "{tmp}"), "is a directory"),
    (("1", "--out", "{tmp}/report.txt"), "give a name ending in .html"),
], ids=["unknown run", "unknown baseline", "missing db", "missing folder", "a directory",
        "not html"])
def test_bad_input_is_one_line_and_writes_nothing(
        two_runs: Path, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    filled = [a.format(tmp=tmp_path) for a in args]
    if "--db" not in filled:
        filled += ["--db", str(two_runs)]
    if "--out" not in filled:
        filled += ["--out", str(tmp_path / "r.html")]
    done = protolab("report", *filled)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def distributed_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two runs of h2 and h3 through the store API, each repetition on a named machine:
    run 1 spread over lab-a and lab-b (alike but for their names; its h2 cell client-bound),
    run 2 with h2 on a machine with another CPU and h3 on lab-a."""
    from protolab.store import TaskRun
    from protolab.store.manifest import host_description

    me = host_description()
    lab_a, lab_b = {**me, "hostname": "lab-a"}, {**me, "hostname": "lab-b"}
    other_cpu = {**me, "hostname": "lab-c", "cpu": {"model": "Other CPU", "count": 64}}
    path = tmp_path_factory.mktemp("distributed") / "lab.db"
    with ResultsStore(path) as store:
        for hosts in ({"h2": (lab_a, lab_b), "h3": (lab_a, lab_b)},
                      {"h2": (other_cpu, other_cpu), "h3": (lab_a, lab_a)}):
            run = store.begin_run("spread", manifest(seeds={"link": 1}))
            for index, protocol in enumerate(("h2", "h3")):
                cell = store.add_cell(run, index, {"label": protocol, "link": {"delay": "25ms"}})
                for rep, described in enumerate(hosts[protocol]):
                    ran = TaskRun(rep, 0, f"tcp://10.0.0.{rep + 1}:4000", described,
                                  1.0 + rep, 2.0 + rep, "ok")
                    store.add_samples(cell, [record(i, ttfb_ms=100.0 + i, total_ms=105.0 + i)
                                             for i in range(10)], rep, False, ran)
                parts = ("client",) if protocol == "h2" else ()
                store.finish_cell(cell, "ok", cpu=CpuTimes(1.9, 0.3, 0.1, saturated=bool(parts),
                                                           saturated_parts=parts))
            store.finish_run(run, "complete")
    return path


def test_a_distributed_run_names_hosts_and_warns_when_the_machines_differ(
        distributed_runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "spread.html"
    done = protolab("report", "2", "--baseline", "1", "--db", str(distributed_runs),
                    "--out", str(out))
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    header = page[page.index("<header>"):page.index("</header>")]
    # Near the top, one line per concern: the comparison, and run 2's own cells (h2 and h3
    # ran on unlike machines); none for run 1 (lab-a and lab-b differ only in their names).
    warnings = re.findall(r'<p class="warning host-warning">(.*?)</p>', header)
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("run 2 vs run 1: warning: the compared cells ran on "
                                  "different hardware or versions (CPU differ")
    assert warnings[1].startswith("run 2: warning: the cells of run 2 ran on different "
                                  "hardware or versions (CPU differ")
    data = report_data(out)
    (comparison,) = data["comparisons"]
    assert comparison["host_warning"]
    assert "CPU" in comparison["host_warning"]
    assert [c["hosts_differ"] for c in comparison["cells"]] == [["CPU"], []]
    rows = dict(re.findall(r'<tr data-row="\d+" class="\w+"><td>(h\d)</td>(.*?)</tr>', page))
    assert '<td class="bad hosts-differ">differ: CPU</td>' in rows["h2"]
    assert "<td>alike</td>" in rows["h3"]
    # Per cell, the machines that ran it, because the runs were distributed (run 1 over two
    # hosts); run 2 ran h2 on one machine and h3 on another.
    run1, run2 = data["runs"]
    assert run1["distributed"]
    assert run2["distributed"]
    assert [c["hosts"] for c in run1["cells"]] == ["lab-a ×1, lab-b ×1"] * 2
    assert [c["hosts"] for c in run2["cells"]] == ["lab-c", "lab-a"]
    assert run1["host_warning"] is None  # lab-a and lab-b differ only in their names
    assert "CPU" in (run2["host_warning"] or "")  # run 2's own cells ran on unlike machines
    cells1 = page[page.index('id="cells-1"'):]
    cells1 = cells1[:cells1.index("</table>")]
    assert re.search(r'<th scope="col"[^>]*>host</th>', cells1)
    # The CPU-bound part is named from the store, not guessed, and only its column is red.
    h2, h3 = run1["cells"]
    assert h2["cpu_saturated_parts"] == ["client"]
    assert h3["cpu_saturated_parts"] == []
    assert any("CPU-bound (client)" in note for note in h2["notes"])
    assert not any("CPU-bound" in note for note in h3["notes"])
    h2_row = re.search(r'<tr data-row="0">(.*?)</tr>', cells1, re.S)
    assert h2_row
    assert '<td data-v="1.9" class="num bad">1.90</td>' in h2_row.group(1)
    assert '<td data-v="0.3" class="num">0.30</td>' in h2_row.group(1)
    seen = browse(out, SCREENSHOTS / "report-distributed-screenshot.png", "compare-1-2",
                  "TTFB B/A")
    check_loaded_clean(seen)
    assert "machines" in seen["headers"]["compare-1-2"]
    assert "host" in seen["headers"]["cells-1"]


def test_a_single_host_run_has_no_host_column_and_no_warning(two_runs: Path,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "one.html"
    done = protolab("report", "2", "--baseline", "1", "--db", str(two_runs), "--out", str(out))
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    assert "host-warning" not in page
    assert not re.search(r'<th scope="col"[^>]*>(host|machines)</th>', page)
    assert all(not r["distributed"] for r in report_data(out)["runs"])
