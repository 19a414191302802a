"""Range requests (RFC 9110 §14) on the lab's fixed bodies: one range is a 206 with its
Content-Range, a range past the end a 416 with `bytes */N`, several ranges the whole body
(a 200, which §14.2 allows), on every HTTP server (the logic is the shared respond()),
checked as pure code, through the lab's own clients over sockets, and with curl.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from protolab.compression import encode_response
from protolab.core.record import Request
from protolab.registry import make_client
from protolab.workload import (
    WorkloadRequest,
    WorkloadResponse,
    choose_range,
    plan,
    select_range,
)
from tests.conftest import ServeProcess, ServerFactory
from tests.helpers import TIMEOUT, target_for
from tests.interop.peers import pattern_bytes, require, server_complaints

SIZE = 100_000
PATTERN = pattern_bytes(SIZE)


def body_of(response: WorkloadResponse) -> bytes:
    return b"".join(bytes(chunk) for chunk in response.body.chunks())


def header(response: WorkloadResponse, name: str) -> str | None:
    return dict(response.headers()).get(name)


@pytest.mark.parametrize(("value", "expected"), [
    ("bytes=0-9", (0, 9)),
    ("bytes=10-", (10, 99)),  # to the end
    ("bytes=-10", (90, 99)),  # suffix: the last 10
    ("bytes=-1000", (0, 99)),  # a suffix longer than the body: all of it
    ("bytes=90-5000", (90, 99)),  # last-pos past the end is cut to it
    ("BYTES=1-2", (1, 2)),  # the unit is case-insensitive (§14.1)
    ("bytes=1-2, ", (1, 2)),  # empty list elements are allowed (§5.6.1)
    ("bytes=100-", "unsatisfiable"),
    ("bytes=100-200,300-", "unsatisfiable"),  # no range overlaps the body
    ("bytes=-0", "unsatisfiable"),
    ("bytes=0-1,5-6", "whole"),  # several ranges: the whole body, a 200 (§14.2)
    ("bytes=5-2", "whole"),  # an invalid int-range: ignored (§14.2)
    ("items=0-1", "whole"),  # a unit the server does not know: ignored
    ("bytes=", "whole"), ("bytes=a-b", "whole"), ("bytes=-", "whole"), ("0-1", "whole"),
    ("bytes=\u00b2-3", "whole"),  # a Unicode digit is not a DIGIT
    ("bytes=1-" + "9" * 5000, (1, 99)),  # too many digits to parse: read as huge
])
def test_choose_range_follows_rfc_9110(value: str, expected: object) -> None:
    assert choose_range(value, 100) == expected


def test_an_empty_body_has_no_part_to_answer() -> None:
    assert choose_range("bytes=-5", 0) == "whole"  # no Content-Range form for nothing
    assert choose_range("bytes=0-", 0) == "unsatisfiable"


def test_a_range_of_the_pattern_is_the_pattern_at_its_offset() -> None:
    full = plan(WorkloadRequest("GET", f"/bytes/{SIZE}"))
    assert header(full, "accept-ranges") == "bytes"
    part = select_range(full, "bytes=1000-1999")
    assert part.status == 206
    assert header(part, "content-range") == f"bytes 1000-1999/{SIZE}"
    assert header(part, "content-length") == "1000"
    assert body_of(part) == PATTERN[1000:2000]
    tail = select_range(full, "bytes=-7")
    assert body_of(tail) == PATTERN[-7:]
    missing = select_range(full, f"bytes={SIZE}-")
    assert missing.status == 416
    assert header(missing, "content-range") == f"bytes */{SIZE}"
    assert select_range(full, "bytes=0-1,3-4") is full


def test_only_fixed_bodies_answer_ranges() -> None:
    for method, target in (("POST", "/echo"), ("GET", "/no/such"), ("GET", "/bytes/x"),
                           ("GET", "/events/poll?stream=r&count=2")):
        response = plan(WorkloadRequest(method, target, b"0123456789"))
        assert header(response, "accept-ranges") is None, target
        assert select_range(response, "bytes=0-1") is response, target
    for target in ("/delay/0/bytes/10", "/page/3?size=10", "/records?count=3", "/health"):
        response = plan(WorkloadRequest("GET", target))
        assert header(response, "accept-ranges") == "bytes", target
        assert select_range(response, "bytes=1-2").status == 206, target


def test_a_range_of_a_coded_body_counts_coded_bytes() -> None:
    """Range selects from the representation sent (RFC 9110 §14.1.1): a compressed
    body's bytes, so parts of equal requests join into that one coded body."""
    request = WorkloadRequest("GET", "/records?count=200", accept_encoding="br")
    coded = encode_response(plan(request), "br")
    assert header(coded, "content-encoding") == "br"
    whole = body_of(coded)
    first = select_range(encode_response(plan(request), "br"), "bytes=0-99")
    rest = select_range(encode_response(plan(request), "br"), "bytes=100-")
    assert (first.status, rest.status) == (206, 206)
    assert header(first, "content-encoding") == "br"
    assert header(rest, "content-range") == f"bytes 100-{len(whole) - 1}/{len(whole)}"
    assert body_of(first) + body_of(rest) == whole


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["h1", "h2", "h3"])
async def test_every_server_answers_ranges(lab_server: ServerFactory, protocol: str) -> None:
    cases = [  # (Range, status, body)
        ("bytes=1000-1999", 206, PATTERN[1000:2000]),
        ("bytes=-100", 206, PATTERN[-100:]),
        ("bytes=99000-", 206, PATTERN[99000:]),
        (f"bytes={SIZE}-", 416, None),
        ("bytes=0-9,20-29", 200, PATTERN),  # several ranges: the whole body
    ]
    async with lab_server() as running:
        client = make_client(protocol, target_for(running, protocol))
        try:
            for value, status, body in cases:
                record = await client.request(Request(
                    path=f"/bytes/{SIZE}", headers=(("range", value),), keep_body=True))
                assert record.error is None, (value, record.error_detail)
                assert record.status == status, value
                if body is not None:
                    assert record.content == body, value
                if status == 200:
                    assert record.body_verified is True
                if status == 416:
                    assert record.content is not None
                    assert b"no requested range" in record.content
        finally:
            await client.close()


@pytest.mark.interop
@pytest.mark.parametrize("option", ["--http1.1", "--http2"])
def test_curl_range(serve_process: Callable[..., ServeProcess], tmp_path: Path,
                    option: str) -> None:
    curl = require("curl", "curl")
    server = serve_process("--proto", "h1,h2")
    assert server.ca_file is not None
    base = server.urls["h2"].rstrip("/")
    common = [curl, "--silent", "--show-error", option, "--max-time", str(TIMEOUT),
              "--cacert", str(server.ca_file)]

    def fetch(name: str, *args: str) -> tuple[str, dict[str, str], bytes]:
        """curl once: the status line, the headers (names lower-case) and the body."""
        head, body = tmp_path / f"{name}.head", tmp_path / f"{name}.body"
        done = subprocess.run([*common, "--dump-header", str(head), "--output", str(body),
                               *args], capture_output=True, text=True, timeout=TIMEOUT,
                              check=False)
        assert done.returncode == 0, done.stderr
        lines = head.read_text().splitlines()
        fields = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
        return lines[0], {k.lower(): v.strip() for k, v in fields.items()}, body.read_bytes()

    url = f"{base}/bytes/{SIZE}"
    status, fields, body = fetch("part", "--range", "1000-1999", url)
    assert " 206" in status
    assert fields["content-range"] == f"bytes 1000-1999/{SIZE}"
    assert fields["accept-ranges"] == "bytes"
    assert body == PATTERN[1000:2000]
    status, fields, body = fetch("suffix", "--range", "-500", url)
    assert " 206" in status
    assert body == PATTERN[-500:]
    status, fields, body = fetch("multi", "--range", "0-9,20-29", url)
    assert " 200" in status
    assert "content-range" not in fields
    assert body == PATTERN
    status, fields, _ = fetch("past", "--range", f"{SIZE}-", url)
    assert " 416" in status
    assert fields["content-range"] == f"bytes */{SIZE}"
    # A coded body: the parts curl fetches (not decoding them) join into the coded whole.
    records = f"{base}/records?count=300"
    coded = ("--header", "accept-encoding: br")
    _, fields, whole = fetch("coded", *coded, records)
    assert fields["content-encoding"] == "br"
    _, _, first = fetch("coded-a", *coded, "--range", "0-999", records)
    status, fields, rest = fetch("coded-b", *coded, "--range", "1000-", records)
    assert " 206" in status
    assert fields["content-range"] == f"bytes 1000-{len(whole) - 1}/{len(whole)}"
    assert first + rest == whole
    assert server_complaints(server.log) == []
