"""One repetition's result as plain JSON, and back: what a worker hands the submitting
process. Lossless (a kept response body travels as base64, arrivals and messages as
lists), and checked on arrival: a worker running another protolab, whose records have
other fields, is a clear error rather than a wrong row."""

from __future__ import annotations

import dataclasses
from typing import Any

from protolab.bench.runner import CellFailure, ClientResult, RanOn, RepResult, RepTask
from protolab.core.record import RequestRecord
from protolab.errors import LabError


def record_from_json(data: Any) -> RequestRecord:
    try:
        return RequestRecord.from_document(data)
    except ValueError as exc:
        raise LabError(f"a worker sent {exc}",
                       hint="run the same protolab revision on every machine") from None


def result_to_json(result: RepResult) -> dict[str, Any]:
    failure = result.client.failure
    return {
        "cell": result.task.cell.index, "rep": result.task.rep,
        "attempt": result.task.attempt,
        "records": [r.to_document() for r in result.client.records],
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
