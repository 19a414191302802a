"""The workload vocabulary: routing, limits and content, as every server serves them."""

from __future__ import annotations

import json

import pytest

from protolab.workload import (
    Body,
    Limits,
    WorkloadRequest,
    check_head,
    content_at,
    page_objects,
    plan,
    verify_content,
)


def body_bytes(body: Body) -> bytes:
    return b"".join(bytes(chunk) for chunk in body.chunks(1000))


def test_bytes_content_is_deterministic_and_verifiable() -> None:
    response = plan(WorkloadRequest("GET", "/bytes/100000"))
    data = body_bytes(response.body)
    assert response.status == 200
    assert len(data) == 100_000
    assert data[:3] == bytes([0, 1, 2])
    assert data[251] == 0
    assert verify_content(0, data)
    assert verify_content(777, data[777:5000])
    corrupt = bytearray(data)
    corrupt[4242] ^= 1
    assert not verify_content(0, corrupt)
    # A chunk delivered at the wrong offset fails too.
    assert not verify_content(1, data[:1000])


def test_zero_bytes_and_chunks_larger_than_the_pattern() -> None:
    assert body_bytes(plan(WorkloadRequest("GET", "/bytes/0")).body) == b""
    big = Body(300_000)
    data = b"".join(bytes(c) for c in big.chunks(200_000))
    assert len(data) == 300_000
    assert verify_content(0, data)
    assert bytes(content_at(250, 2)) == bytes([250, 0])


def test_delay_and_query_strings() -> None:
    response = plan(WorkloadRequest("GET", "/delay/250/bytes/10?i=3"))
    assert (response.status, response.delay_ms, response.body.length) == (200, 250, 10)


def test_page_manifest_lists_distinct_objects() -> None:
    response = plan(WorkloadRequest("GET", "/page/5?size=2048"))
    objects = page_objects(body_bytes(response.body))
    assert objects == [f"/bytes/2048?i={i}" for i in range(5)]
    assert json.loads(body_bytes(response.body))["size"] == 2048


def test_echo_returns_the_body_and_needs_post() -> None:
    response = plan(WorkloadRequest("POST", "/echo", b"hello"))
    assert response.status == 200
    assert body_bytes(response.body) == b"hello"
    assert plan(WorkloadRequest("GET", "/echo")).status == 405


@pytest.mark.parametrize(
    ("target", "status", "words"),
    [
        ("/nope", 404, "no such resource"),
        ("/bytes/-1", 400, "non-negative integer"),
        ("/bytes/abc", 400, "non-negative integer"),
        ("/bytes/99999999999999", 400, "over the limit"),
        ("/delay/9999999/bytes/1", 400, "MS=9999999 is over the limit"),
        ("/page/100000", 400, "K=100000 is over the limit"),
        ("/page/3?size=x", 400, "size must be"),
    ],
)
def test_bad_paths_get_a_reason(target: str, status: int, words: str) -> None:
    response = plan(WorkloadRequest("GET", target))
    assert response.status == status
    assert words in body_bytes(response.body).decode()


def test_limits_are_configurable() -> None:
    small = Limits(max_bytes=10)
    assert plan(WorkloadRequest("GET", "/bytes/11"), small).status == 400
    assert plan(WorkloadRequest("GET", "/bytes/10"), small).status == 200
    assert check_head(20_000, None, Limits())
    assert check_head(100, 1 << 30, Limits()) is not None
    assert check_head(100, 10, Limits()) is None


def test_same_headers_for_every_protocol() -> None:
    headers = dict(plan(WorkloadRequest("GET", "/bytes/5")).headers('h3=":1"'))
    assert headers == {
        "content-type": "application/octet-stream", "content-length": "5",
        "cache-control": "no-store", "server": "protolab", "accept-ranges": "bytes",
        "alt-svc": 'h3=":1"',
    }
