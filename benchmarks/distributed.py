"""What going through Dask costs, and what a second worker buys, on this machine.

Runs one small suite four ways and prints each run's duration as the store recorded it
(from the run's start to its end: CLI start-up and charts left out):

1. `protolab bench` locally: one link per link point, shared by its repetitions;
2. locally with a link of its own per repetition (`runner.run_alone`, what a worker
   does for each task), without Dask;
3. `--scheduler` with one `protolab worker`;
4. `--scheduler` with two workers.

(3) - (2) per task is what Dask itself adds (submission, scheduling, the result's trip
back, the store write); (2) - (1) per repetition is what a link of one's own costs.
(4) against (3) is the speed-up of a second worker; on one 2-core machine it stays well
under 2x: both workers, their links' forwarders and servers, the clients and the
submitting process share two cores.

Needs root (the emulated link) and `dask`/`distributed`; starts and stops its own
scheduler and workers on loopback.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from protolab.bench.runner import plan, run_alone
from protolab.bench.suite import expand, load_suite
from protolab.netem.deathsig import wrap
from protolab.store import ResultsStore

REPO = Path(__file__).resolve().parents[1]
SUITE = """name = "dask-bench"
repetitions = {reps}
warmup = 1
[link]
sweep = {{ delay = ["10ms", "25ms"] }}
[workload]
paths = ["/bytes/100"]
count = 3
fresh_connection = true
[[variant]]
protocol = "h1"
tls = false
[[variant]]
protocol = "h2"
"""


def _start(argv: list[str], *, stdout: int, stderr: int) -> subprocess.Popen[str]:
    return subprocess.Popen(wrap(argv, os.getpid()), start_new_session=True, text=True,
                            cwd=REPO, stdout=stdout, stderr=stderr)


def _line(proc: subprocess.Popen[str], stream: object, pattern: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = stream.readline()  # type: ignore[attr-defined]
        if not line:
            break
        match = re.search(pattern, line)
        if match:
            return match.group(1)
    raise SystemExit(f"no {pattern!r} from {proc.args!r}")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _bench(suite: Path, db: Path, out: Path, *extra: str) -> float:
    subprocess.run([sys.executable, "-m", "protolab", "bench", str(suite), "--json", "--db",
                    str(db), "--out", str(out), *extra], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL, timeout=1800)
    with ResultsStore(db, create=False) as store:
        run = store.runs()[-1]
        if run.status != "complete" or run.duration_s is None:
            raise SystemExit(f"run {run.id} ended {run.status}")
        return run.duration_s


def _busy_s(db: Path) -> float:
    """Seconds the run's repetitions held their worker, summed (from the stored spans)."""
    with ResultsStore(db, create=False) as store:
        run = store.runs()[-1]
        return sum((t.ended or 0) - (t.started or 0) for c in store.cells(run.id)
                   for t in store.cell_tasks(c.id))


def _own_links(suite_path: Path, work: Path) -> float:
    """Every repetition with a link and servers of its own, in this process, in order."""
    suite = load_suite(str(suite_path))
    tasks = [t for g in plan(suite, expand(suite), suite.repetitions) for t in g.tasks]
    started = time.monotonic()
    for task in tasks:
        result = run_alone(task, work / "certs")
        if result.client.failure is not None:
            raise SystemExit(f"cell {task.cell.index}: {result.client.failure}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="measured repetitions per cell")
    args = parser.parse_args()
    dask = Path(sys.executable).with_name("dask")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        suite = work / "suite.toml"
        suite.write_text(SUITE.format(reps=args.repeat))
        tasks = len(expand(load_suite(str(suite)))) * (args.repeat + 1)
        local = _bench(suite, work / "local.db", work / "out")
        own = _own_links(suite, work)
        scheduler = _start([str(dask), "scheduler", "--host", "127.0.0.1", "--port", "0",
                            "--no-dashboard", "--dashboard-address", "127.0.0.1:0"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        workers: list[subprocess.Popen[str]] = []
        try:
            address = _line(scheduler, scheduler.stderr, r"Scheduler at:\s+(tcp://\S+)")
            drain = subprocess.Popen(["cat"], stdin=scheduler.stderr, stdout=subprocess.DEVNULL)
            durations = {}
            for n in (1, 2):
                while len(workers) < n:
                    proc = _start([sys.executable, "-m", "protolab", "worker", "--scheduler",
                                   address, "--name", f"w{len(workers) + 1}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                    _line(proc, proc.stdout, r"protolab worker (tcp://\S+): ready")
                    workers.append(proc)
                durations[n] = _bench(suite, work / f"dask{n}.db", work / "out",
                                      "--scheduler", address)
            idle = durations[1] - _busy_s(work / "dask1.db")
        finally:
            for proc in workers:
                _stop(proc)
            _stop(scheduler)
        drain.wait(30)
    per = {name: seconds / tasks * 1000 for name, seconds in
           (("local", local), ("own", own), ("dask1", durations[1]), ("dask2", durations[2]))}
    print(f"suite: 4 cells x {args.repeat + 1} repetitions = {tasks} tasks, "
          f"{os.cpu_count()} CPUs")
    print(f"{'how':<44} {'wall s':>8} {'ms/task':>8}")
    for label, key, seconds in (
            ("local, one link per link point", "local", local),
            ("local, a link per repetition (no Dask)", "own", own),
            ("Dask, 1 worker", "dask1", durations[1]),
            ("Dask, 2 workers", "dask2", durations[2])):
        print(f"{label:<44} {seconds:>8.2f} {per[key]:>8.0f}")
    print(f"Dask's own overhead per task: {idle / tasks * 1000:.0f} ms (1 worker: the run's "
          f"time its worker was not running a repetition; {per['dask1'] - per['own']:+.0f} ms "
          "against a link per repetition locally)")
    print(f"a link and servers of its own cost {per['own'] - per['local']:.0f} ms per "
          "repetition (what every task pays)")
    print(f"2 workers vs 1: {durations[1] / durations[2]:.2f}x faster")


if __name__ == "__main__":
    main()
