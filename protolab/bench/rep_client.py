"""The client side of one cell repetition: `run_client`, on a thread in the client namespace.

It builds the variant's client (protolab.registry), sends the workload's requests —
closed load (at most `concurrency` in flight, or one connection per request with
`fresh_connection`) or open load (`_open_load`: a constant arrival rate) — and hands back
the records with the thread's CPU time, or the cell's typed failure; it never raises.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import time
from typing import Any

from protolab.bench.rep_values import CellFailure, ClientJob, ClientResult
from protolab.core.client import ProtocolClient
from protolab.core.record import Request, RequestRecord, Target
from protolab.registry import make_client
from protolab.timing import now_ns
from protolab.workload import Body


def run_client(job: ClientJob, target: Target) -> ClientResult:
    """One repetition of the workload against `target`; runs on a thread inside the client
    namespace. Never raises: a failure is typed in the result."""
    cpu0 = time.thread_time()
    # No collection while the client is timed, as timeit does: a full one stopped every
    # stream of a measured HTTP/3 client for 30-60 ms in a large process (docs/hol.md).
    # What the cell makes is collected after it; the runner's long-lived objects are
    # frozen out of the collector's sight meanwhile (docs/netem.md#timing).
    collecting = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        records = asyncio.run(
            asyncio.wait_for(_workload(job, target), job.timeout_s)
        )
    except TimeoutError:
        failure = CellFailure("timeout", f"timeout: the cell took over {job.timeout_s} s")
    except Exception as exc:  # noqa: BLE001 - a failing cell is recorded, the run goes on
        failure = CellFailure("failed", f"{type(exc).__name__}: {exc}")
    else:
        return ClientResult(tuple(records), time.thread_time() - cpu0)
    finally:
        if collecting:
            gc.enable()
        gc.unfreeze()
    return ClientResult((), time.thread_time() - cpu0, failure)


async def _workload(job: ClientJob, target: Target) -> list[RequestRecord]:
    work, variant = job.workload, job.variant
    body = b"".join(bytes(chunk) for chunk in Body(work.body_bytes).chunks())
    requests = [Request(method="POST" if body else "GET", path=work.paths[i % len(work.paths)],
                        body=body, headers=work.headers, record_arrivals=work.record_arrivals)
                for i in range(work.count)]
    extra: dict[str, Any] = {"qlog_dir": job.qlog_dir} if job.qlog_dir is not None else {}
    if variant.migrate_to == "address":  # the registry allows it only where a client moves
        extra["migrate_address"] = job.client_addr_alt
    client = make_client(variant.protocol, target, **variant.client_options(), **extra)
    try:
        if variant.primes:
            # Earn a session ticket; the measured requests then resume it.
            await client.request(Request(path="/bytes/1"))
            await client.close()
        if work.load == "open":
            return await _open_load(client, requests, work.rate)
        if work.fresh_connection:
            records = []
            for request in requests:
                records.append(await client.request(request))
                await client.close()
            return records
        slots = asyncio.Semaphore(work.concurrency)

        async def one(request: Request) -> RequestRecord:
            async with slots:
                return await client.request(request)

        tasks = [asyncio.create_task(one(r)) for r in requests]
        return list(await asyncio.gather(*tasks))
    finally:
        await client.close()


async def _open_load(
    client: ProtocolClient, requests: list[Request], rate: float
) -> list[RequestRecord]:
    """Constant arrival rate: request i is due at start + i / rate, sent then (or as soon
    as the client can), and its record keeps when it was due (`intended_ns`)."""
    start = now_ns()
    interval_ns = 1e9 / rate

    async def due(i: int, request: Request) -> RequestRecord:
        intended = start + round(i * interval_ns)
        wait = (intended - now_ns()) / 1e9
        if wait > 0:
            await asyncio.sleep(wait)
        record = await client.request(request)
        return dataclasses.replace(record, intended_ns=intended)

    return list(await asyncio.gather(*(due(i, r) for i, r in enumerate(requests))))

