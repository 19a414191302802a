"""One repetition's result as plain JSON, and back: what a worker hands the submitting
process. Lossless (a kept response body travels as base64, arrivals and messages as
lists), and checked on arrival: a worker running another protolab, whose records have
other fields, is a clear error rather than a wrong row."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

from protolab.bench.runner import CellFailure, ClientResult, RanOn, RepResult, RepTask
from protolab.core.record import RECORD_FIELDS, MessageTiming, RequestRecord
from protolab.errors import LabError

_MESSAGE_FIELDS = frozenset(f.name for f in dataclasses.fields(MessageTiming))


def record_to_json(record: RequestRecord) -> dict[str, Any]:
    data = dataclasses.asdict(record)
    data["arrivals"] = [list(a) for a in record.arrivals]
    data["messages"] = [dataclasses.asdict(m) for m in record.messages]
    data["content"] = None if record.content is None else base64.b64encode(
        record.content).decode("ascii")
    return data


def record_from_json(data: Any) -> RequestRecord:
    if not isinstance(data, dict) or set(data) != set(RECORD_FIELDS):
        raise LabError("a worker sent a record with other fields than this protolab's",
                       hint="run the same protolab revision on every machine")
    messages = data["messages"]
    if not isinstance(messages, list | tuple) or not all(
            isinstance(m, dict) and set(m) == _MESSAGE_FIELDS for m in messages):
        raise LabError("a worker sent message timings this protolab does not know",
                       hint="run the same protolab revision on every machine")
    content = data["content"]
    return RequestRecord(**{
        **data,
        "arrivals": tuple((int(t), int(n)) for t, n in data["arrivals"]),
        "messages": tuple(MessageTiming(**m) for m in messages),
        "content": None if content is None else base64.b64decode(content),
        "transport": dict(data["transport"]),
    })


def result_to_json(result: RepResult) -> dict[str, Any]:
    failure = result.client.failure
    return {
        "cell": result.task.cell.index, "rep": result.task.rep,
        "attempt": result.task.attempt,
        "records": [record_to_json(r) for r in result.client.records],
        "cpu_s": result.client.cpu_s,
        "failure": None if failure is None else {"kind": failure.kind,
                                                 "message": failure.message},
        "ran": dataclasses.asdict(result.ran),
        "wall_s": result.wall_s, "server_cpu_s": result.server_cpu_s,
        "forwarder_cpu_s": result.forwarder_cpu_s, "link": dict(result.link),
        "namespace_cc": dict(result.namespace_cc),
        "namespace_cc_asked": result.namespace_cc_asked,
    }


def result_from_json(data: Any, task: RepTask) -> RepResult:
    """The result a worker sent for `task` (the submitting side's own task object)."""
    try:
        if (data["cell"], data["rep"], data["attempt"]) != (
                task.cell.index, task.rep, task.attempt):
            raise LabError(f"a worker answered cell {data['cell']} repetition {data['rep']} "
                           f"for cell {task.cell.index} repetition {task.rep}")
        failure = data["failure"]
        kind = None if failure is None else failure["kind"]
        if kind not in (None, "timeout", "failed"):
            raise LabError(f"a worker sent an unknown failure kind {kind!r}")
        ran = data["ran"]
        return RepResult(
            task,
            ClientResult(tuple(record_from_json(r) for r in data["records"]),
                         float(data["cpu_s"]),
                         None if failure is None else CellFailure(
                             "timeout" if kind == "timeout" else "failed",
                             str(failure["message"]))),
            RanOn(str(ran["worker"]), dict(ran["host"]), float(ran["started"]),
                  float(ran["ended"])),
            wall_s=float(data["wall_s"]), server_cpu_s=float(data["server_cpu_s"]),
            forwarder_cpu_s=float(data["forwarder_cpu_s"]),
            link={str(k): int(v) for k, v in data["link"].items()},
            namespace_cc={str(k): str(v) for k, v in data["namespace_cc"].items()},
            namespace_cc_asked=str(data["namespace_cc_asked"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LabError(f"a worker's result does not decode ({type(exc).__name__}: {exc})",
                       hint="run the same protolab revision on every machine") from None
