"""The request assembler HTTP/2 and HTTP/3 share, without sockets: limits (RFC 9110 §15.5.14
413, RFC 6585 §5 431) and what a stream delivers once it ends."""

from __future__ import annotations

from protolab.workload import Body, Limits, WorkloadRequest, WorkloadResponse
from servers.assembler import RequestAssembler, response_headers

HEAD = [(b":method", b"POST"), (b":scheme", b"https"), (b":path", b"/echo?x=1"),
        (b":authority", b"localhost")]


def test_a_request_is_its_pseudo_headers_and_its_whole_body() -> None:
    assembler = RequestAssembler()
    assert assembler.headers(HEAD) is None
    assert assembler.data(b"abc") is None
    assert assembler.data(b"def") is None
    assert assembler.end() == WorkloadRequest("POST", "/echo?x=1", b"abcdef")


def test_headers_over_the_limit_get_431_and_the_rest_is_dropped() -> None:
    assembler = RequestAssembler(Limits(max_header_bytes=200))
    early = assembler.headers([*HEAD, (b"x-filler", b"a" * 200)])
    assert early is not None
    assert early.status == 431
    assert assembler.data(b"more") is None  # answered already: nothing new to say
    assert assembler.end() is None


def test_a_declared_body_over_the_limit_gets_413_before_any_data() -> None:
    assembler = RequestAssembler(Limits(max_body_bytes=10))
    early = assembler.headers([*HEAD, (b"content-length", b"11")])
    assert early is not None
    assert early.status == 413
    assert assembler.end() is None


def test_a_body_that_grows_over_the_limit_gets_413_once() -> None:
    assembler = RequestAssembler(Limits(max_body_bytes=10))
    assert assembler.headers(HEAD) is None
    assert assembler.data(b"x" * 10) is None
    too_large = assembler.data(b"x")
    assert too_large is not None
    assert too_large.status == 413
    assert assembler.data(b"x" * 100) is None
    assert assembler.end() is None


def test_missing_pseudo_headers_leave_method_and_path_empty() -> None:
    # The workload's plan() answers those (h2 and aioquic refuse such streams earlier).
    assembler = RequestAssembler()
    assert assembler.headers([(b"user-agent", b"x")]) is None
    assert assembler.end() == WorkloadRequest("", "", b"")


def test_response_headers_start_with_status_and_carry_alt_svc() -> None:
    response = WorkloadResponse(200, "text/plain", Body(3))
    headers = response_headers(response, 'h3=":443"; ma=86400')
    assert headers[0] == (b":status", b"200")
    assert (b"content-length", b"3") in headers
    assert headers[-1] == (b"alt-svc", b'h3=":443"; ma=86400')
    assert (b"alt-svc", b'h3=":443"; ma=86400') not in response_headers(response)
