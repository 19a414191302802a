"""Answering the HTTP push endpoints (short poll, long poll, SSE) from the event stream.

`plan()` decides *what* was asked (a `PushPlan`); this module decides, at request
time, what has been born and waits for what has not — so every HTTP server, through
its `respond()`, serves the same events with the same JSON per event (protolab.events).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from protolab.events import EventHub, StreamSpec, encode_event
from protolab.timing import now_ns
from protolab.workload import Body, PushPlan, WorkloadResponse

# One hub per server process: every protocol's server sees the same stream origins, so
# a client may poll a stream over HTTP/1.1 and follow it over SSE on HTTP/3.
HUB = EventHub()


async def resolve_push(plan: PushPlan, hub: EventHub = HUB) -> WorkloadResponse:
    origin = hub.origin(plan.spec, now_ns())
    if plan.kind == "sse":
        return WorkloadResponse(
            200, "text/event-stream", Body(0),
            stream=lambda: sse_events(plan.spec, origin, plan.after),
        )
    if plan.kind == "long-poll" and plan.after < plan.spec.count:
        wait_until = min(plan.spec.born_ns(origin, plan.after + 1),
                         now_ns() + plan.wait_ms * 1_000_000)
        await _sleep_until(wait_until)
    return poll_answer(plan.spec, origin, plan.after, now_ns())


def poll_answer(spec: StreamSpec, origin: int, after: int, now: int) -> WorkloadResponse:
    """Every event born by `now` after `after`; `last` is what to pass as `after` next."""
    last = max(after, spec.born_by(origin, now))
    events = ",".join(
        encode_event(seq, spec.born_ns(origin, seq), now, spec.size)
        for seq in range(after + 1, last + 1)
    )
    done = "true" if last >= spec.count else "false"
    body = f'{{"events":[{events}],"last":{last},"done":{done}}}'.encode()
    return WorkloadResponse(200, "application/json", Body(len(body), body))


async def sse_events(spec: StreamSpec, origin: int, after: int) -> AsyncIterator[bytes]:
    """One SSE message per event (id = sequence, so a reconnecting client can resume),
    each sent when it is born; the response ends after the last."""
    for seq in range(after + 1, spec.count + 1):
        born = spec.born_ns(origin, seq)
        await _sleep_until(born)
        text = encode_event(seq, born, now_ns(), spec.size)
        yield f"id: {seq}\ndata: {text}\n\n".encode()


async def _sleep_until(when_ns: int) -> None:
    delay = when_ns - now_ns()
    if delay > 0:
        await asyncio.sleep(delay / 1e9)
