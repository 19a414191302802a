"""Size and CPU time of gzip and brotli on the compression suite's JSON bodies.

For each payload (the /records JSON the suites fetch: protolab/records.py through
`records_json`), prints the compressed size, the ratio to the identity body, and the
median time to compress and to decompress over N runs (a bounded loop: at most
`--runs` repetitions and about `--budget` seconds per cell, whichever ends first),
for gzip levels 1, 6, 9 and brotli qualities 1, 4, 5, 6, 9, 11 (the lab's server uses
gzip 6 and brotli 5 unless a suite sets `gzip_level` / `brotli_quality`).

    .venv/bin/python benchmarks/compression.py [--counts 10,50,650] [--runs 15]

Figures are printed, not asserted: they depend on the machine (docs/compression.md
quotes a run on the 2-core lab machine).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial

from protolab.compression import Coding, CompressionSettings, decode, encode
from protolab.records import make_records, records_json

GZIP_LEVELS = (1, 6, 9)
BROTLI_QUALITIES = (1, 4, 5, 6, 9, 11)


def timed(fn: Callable[[], bytes], runs: int, budget_s: float) -> tuple[float, bytes]:
    """Median milliseconds of `fn` over at most `runs` calls and about `budget_s`."""
    times: list[float] = []
    out = b""
    deadline = time.perf_counter() + budget_s
    for _ in range(runs):
        started = time.perf_counter_ns()
        out = fn()
        times.append((time.perf_counter_ns() - started) / 1e6)
        if time.perf_counter() > deadline:
            break
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="10,50,650",
                        help="record counts of the /records bodies (default 10,50,650)")
    parser.add_argument("--runs", type=int, default=15, help="repetitions per cell (1..1000)")
    parser.add_argument("--budget", type=float, default=2.0,
                        help="seconds per cell at most, roughly (0.1..60)")
    args = parser.parse_args(argv)
    try:
        counts = [int(c) for c in args.counts.split(",")]
    except ValueError:
        print(f"--counts must be integers separated by commas, got {args.counts!r}",
              file=sys.stderr)
        return 2
    if not all(1 <= c <= 100_000 for c in counts) or not 1 <= args.runs <= 1000 \
            or not 0.1 <= args.budget <= 60:
        print("counts must be 1..100000, --runs 1..1000, --budget 0.1..60", file=sys.stderr)
        return 2
    print(f"{'records':>7} {'coding':<12} {'bytes':>9} {'ratio':>6} {'enc ms':>8} "
          f"{'dec ms':>7}")
    for count in counts:
        body = records_json(make_records(count))
        print(f"{count:>7} {'identity':<12} {len(body):>9} {1:>6.3f} {'-':>8} {'-':>7}")
        cases: list[tuple[str, Coding, CompressionSettings]] = [
            *((f"gzip {lvl}", "gzip", CompressionSettings(gzip_level=lvl)) for lvl in GZIP_LEVELS),
            *((f"br q{q}", "br", CompressionSettings(brotli_quality=q))
              for q in BROTLI_QUALITIES),
        ]
        for label, coding, settings in cases:
            enc_ms, coded = timed(partial(encode, body, coding, settings), args.runs,
                                  args.budget)
            dec_ms, plain = timed(partial(decode, coded, coding), args.runs, args.budget)
            if plain != body:
                print(f"{label}: decoded body differs from the original", file=sys.stderr)
                return 1
            print(f"{count:>7} {label:<12} {len(coded):>9} {len(coded) / len(body):>6.3f} "
                  f"{enc_ms:>8.2f} {dec_ms:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
