"""Serialisation alone: what the grpc-vs-json suite's calls spend encoding and decoding.

    .venv/bin/python benchmarks/grpc_vs_json.py [--repeat N] [--counts 10,650]

For each payload size (records, protolab/records.py) and encoding, the median over
`--repeat` runs of:

- server: building the reply the lab's servers build per request — protobuf: the
  records, `records_to_proto`, `SerializeToString()` (servers/grpc.py); JSON:
  the records and `records_json` (protolab/workload.py), gzip level 6 for json+gzip;
- client: what the suite's library clients do with the reply — protobuf:
  `RecordList.FromString` (what the generated stub's deserialiser runs); JSON:
  `json.loads` (httpx's `response.json()`), after gunzip for json+gzip.

Figures are printed, not asserted: they are this machine's Python, and the suite's
description cites them to separate serialisation from the network.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import statistics
import time
from collections.abc import Callable

from protolab.proto import lab_pb2
from protolab.proto.convert import records_to_proto
from protolab.records import make_records, records_json


def median_ms(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        action()
        times.append((time.perf_counter_ns() - start) / 1e6)
    return statistics.median(times)


def measure(count: int, repeat: int) -> list[str]:
    def proto_reply() -> bytes:
        return bytes(records_to_proto(make_records(count)).SerializeToString())

    def json_reply(gzipped: bool) -> Callable[[], bytes]:
        return lambda: records_json(make_records(count), gzipped=gzipped)

    cases: dict[str, tuple[Callable[[], bytes], Callable[[bytes], object]]] = {
        "protobuf": (proto_reply, lab_pb2.RecordList.FromString),
        "json": (json_reply(False), json.loads),
        "json+gzip": (json_reply(True), lambda data: json.loads(gzip.decompress(data))),
    }
    generate = median_ms(lambda: make_records(count), repeat)
    out = [f"{count:>6} records  (making the Python objects alone, in every server build: "
           f"{generate:.3f} ms)"]
    for name, (encode, decode) in cases.items():
        data = encode()
        server = median_ms(encode, repeat)
        client = median_ms(functools.partial(decode, data), repeat)
        out.append(f"{count:>6} records  {name:<10} {len(data):>8} bytes   server builds "
                   f"{server:7.3f} ms   client parses {client:7.3f} ms   "
                   f"sum {server + client:7.3f} ms")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--counts", default="10,650")
    args = parser.parse_args()
    for count in (int(c) for c in args.counts.split(",")):
        for text in measure(count, args.repeat):
            print(text)


if __name__ == "__main__":
    main()
