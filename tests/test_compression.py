"""HTTP content coding (protolab/compression.py) and gRPC message compression.

The negotiation rules of RFC 9110 §12.5.3 without sockets; then every HTTP protocol over
TLS serving br, gzip and identity to the lab's clients, decoded to the identity body;
httpx and curl decoding what the lab's servers send; gRPC gzip replies measured on the
wire by a counting relay; and the compression suite's shape on a slow emulated link.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from protolab.bench.claims import METRICS, CellView
from protolab.bench.suite import load_suite, parse_suite
from protolab.compression import (
    BodyDecoder,
    Coding,
    CodingError,
    CompressionSettings,
    decode,
    encode,
    encode_response,
    negotiate,
    parse_accept_encoding,
)
from protolab.core.record import Request, RequestRecord
from protolab.errors import ConfigError
from protolab.records import make_records, records_json
from protolab.registry import make_client
from protolab.workload import WorkloadRequest, plan
from servers.common import GrpcSettings
from servers.run import RunningServers
from tests.conftest import ServerFactory
from tests.helpers import TIMEOUT, target_for

RECORDS = "/records?count=300"
IDENTITY = records_json(make_records(300))


# --- negotiation (RFC 9110 §12.5.3), pure ---------------------------------------------------

@pytest.mark.parametrize(("header", "chosen"), [
    (None, "identity"),  # absent: the lab codes only when asked
    ("", "identity"),  # empty: no coding wanted (§12.5.3)
    ("gzip", "gzip"),
    ("br", "br"),
    ("gzip, br", "br"),  # equal q: the server's preference
    ("br;q=0.5, gzip", "gzip"),
    ("br;q=0, gzip;q=0", "identity"),  # q=0 refuses
    ("br;q=0, gzip", "gzip"),
    ("*", "br"),
    ("*;q=0", "identity"),  # identity refused too: the lab still answers, uncoded
    ("*, br;q=0", "gzip"),  # * stands for what is not listed
    ("identity", "identity"),
    ("gzip;q=0.5, identity", "identity"),  # the client prefers no coding
    ("gzip, identity;q=0.5", "gzip"),
    ("x-gzip", "gzip"),  # §8.4.1.3
    ("GZIP", "gzip"),  # coding names are case-insensitive
    ("gzip;Q=0.8", "gzip"),  # so is the q
    ("gzip ; q=0.8", "gzip"),  # OWS around ;
    ("deflate, zstd, compress", "identity"),  # unknown or not offered: ignored
    ("zstd, br;q=0.1", "br"),
    (" , ,gzip,", "gzip"),  # empty list elements are allowed
    ("br;q=0, br", "identity"),  # listed twice: the refusal stands
    ("br;q=1.000, gzip;q=0.999", "br"),
    # Malformed: identity, never an error.
    ("gzip;q=2", "identity"),
    ("gzip;q=1.5", "identity"),
    ("gzip;q=0.1234", "identity"),  # at most three decimals
    ("gzip;q=", "identity"),
    ("gzip;level=5", "identity"),  # no parameter but q
    ("gzip q=1", "identity"),
    ("br;q=0.5;q=0.7", "identity"),
    ('"gzip"', "identity"),
])
def test_accept_encoding_negotiation_follows_rfc9110(header: str | None, chosen: str) -> None:
    assert negotiate(header) == chosen


def test_parse_keeps_q_values() -> None:
    assert parse_accept_encoding("br;q=0.8, gzip;q=0.5, *;q=0") == {
        "br": 0.8, "gzip": 0.5, "*": 0.0}
    assert parse_accept_encoding("gzip;q=abc") is None


def test_the_one_encoder_codes_json_once_with_its_headers() -> None:
    response = plan(WorkloadRequest("GET", RECORDS))
    coded = encode_response(response, "br, gzip")
    headers = dict(coded.headers())
    assert headers["content-encoding"] == "br"
    assert headers["vary"] == "accept-encoding"
    assert headers["content-length"] == str(coded.body.length)
    assert headers["server-timing"].startswith("enc;dur=")
    assert 'desc="br q5"' in headers["server-timing"]
    assert coded.body.literal is not None
    assert decode(coded.body.literal, "br") == IDENTITY
    # Identity chosen: the same body, and Vary still says the header mattered.
    plain = dict(encode_response(response, "identity").headers())
    assert "content-encoding" not in plain
    assert plain["vary"] == "accept-encoding"
    gzipped = encode_response(response, "gzip", CompressionSettings(gzip_level=9))
    assert gzipped.body.literal is not None
    assert decode(gzipped.body.literal, "gzip") == IDENTITY
    assert 'desc="gzip level 9"' in dict(gzipped.headers())["server-timing"]


@pytest.mark.parametrize("target", ["/bytes/5000", "/health", "/records?count=10&gzip=1"])
def test_what_is_not_coded(target: str) -> None:
    """Octet streams, bodies under min_size, and a body already coded are left alone."""
    response = plan(WorkloadRequest("GET", target))
    assert encode_response(response, "br, gzip") is response


def test_levels_are_settings() -> None:
    body = records_json(make_records(650))
    assert len(encode(body, "br", CompressionSettings(brotli_quality=11))) < len(
        encode(body, "br", CompressionSettings(brotli_quality=1)))
    assert len(encode(body, "gzip", CompressionSettings(gzip_level=9))) < len(
        encode(body, "gzip", CompressionSettings(gzip_level=1)))
    with pytest.raises(ConfigError, match="brotli quality"):
        CompressionSettings(brotli_quality=12)
    with pytest.raises(ConfigError, match="gzip level"):
        CompressionSettings(gzip_level=0)


class _Recorder:
    def __init__(self) -> None:
        self.transport: dict[str, int] = {}
        self.content: bytearray | None = None
        self.error: str | None = None

    def fail(self, kind: str, detail: str) -> None:
        self.error = kind


@pytest.mark.parametrize("coding", ["br", "gzip"])
def test_decoder_takes_any_split_and_refuses_a_truncated_or_corrupt_body(coding: str) -> None:
    coded = encode(IDENTITY, coding)  # type: ignore[arg-type]
    decoder = BodyDecoder(coding, keep=True, server_timing='enc;dur=1.500;desc="x"')
    for i in range(0, len(coded), 7):
        decoder.feed(coded[i:i + 7])
    recorder = _Recorder()
    decoder.apply(recorder)
    assert recorder.error is None
    assert bytes(recorder.content or b"") == IDENTITY
    assert recorder.transport["decoded_bytes"] == len(IDENTITY)
    assert recorder.transport["server_encode_us"] == 1500
    truncated = BodyDecoder(coding)
    truncated.feed(coded[:-10])
    with pytest.raises(CodingError):
        truncated.finish()
    corrupt = BodyDecoder(coding)
    corrupt.feed(coded[:20] + bytes(b ^ 0xFF for b in coded[20:60]) + coded[60:])
    bad = _Recorder()
    corrupt.apply(bad)
    assert bad.error == "content_coding"
    assert decode(IDENTITY, "identity") == IDENTITY
    with pytest.raises(CodingError, match="unknown"):
        decode(coded, "zstd")


@pytest.mark.parametrize(("variant", "words"), [
    ({"protocol": "h2", "accept_encoding": "gzip;q=7"}, "not an RFC 9110 Accept-Encoding"),
    ({"protocol": "grpc", "accept_encoding": "br"}, "does not take accept_encoding"),
    ({"protocol": "h1", "grpc_compression": "gzip"}, "for the gRPC protocols"),
    ({"protocol": "grpc", "grpc_compression": "zstd"}, "identity, gzip"),
    ({"protocol": "h2", "brotli_quality": 12}, "brotli_quality"),
    ({"protocol": "h2", "gzip_level": 0}, "gzip_level"),
])
def test_compression_knobs_are_checked_at_the_edge(variant: dict[str, object],
                                                   words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_suite({"variant": [variant]})


# --- every HTTP protocol over TLS, real sockets ---------------------------------------------

async def _fetch(running: RunningServers, protocol: str, accept: str,
                 path: str = RECORDS) -> RequestRecord:
    client = make_client(protocol, target_for(running, protocol), accept_encoding=accept)
    try:
        return await client.request(Request(path=path, keep_body=True))
    finally:
        await client.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["h1", "h2", "h3"])
async def test_every_http_protocol_serves_br_gzip_and_identity(
    lab_server: ServerFactory, protocol: str,
) -> None:
    async with lab_server() as running:
        records = {coding: await _fetch(running, protocol, coding)
                   for coding in ("identity", "gzip", "br")}
        refused = await _fetch(running, protocol, "br;q=0, gzip;q=0")
        octets = await _fetch(running, protocol, "br", "/bytes/20000")
    for record in (*records.values(), refused, octets):
        assert record.ok, record.error_detail
    identity, gzipped, brotli = records["identity"], records["gzip"], records["br"]
    assert identity.content == gzipped.content == brotli.content == IDENTITY
    assert identity.body_bytes == len(IDENTITY)
    assert "decoded_bytes" not in identity.transport
    pairs: tuple[tuple[RequestRecord, Coding], ...] = ((gzipped, "gzip"), (brotli, "br"))
    for record, coding in pairs:
        # body_bytes is the coded body as it crossed the wire, byte for byte the encoder's.
        assert record.body_bytes == len(encode(IDENTITY, coding)) < len(IDENTITY) / 2
        assert record.transport["decoded_bytes"] == len(IDENTITY)
        assert record.transport["server_encode_us"] > 0
        assert record.bytes_in > record.body_bytes  # framing and headers on top
    assert brotli.bytes_in < identity.bytes_in / 2
    assert refused.body_bytes == len(IDENTITY)
    assert octets.body_bytes == 20000
    assert octets.body_verified is True


def _tls_context(running: RunningServers) -> ssl.SSLContext:
    assert running.certs is not None
    return ssl.create_default_context(cafile=str(running.certs.ca_file))


@pytest.mark.asyncio
@pytest.mark.parametrize("http2", [False, True], ids=["h1", "h2"])
@pytest.mark.parametrize("coding", ["br", "gzip"])
async def test_httpx_decodes_what_the_lab_serves(lab_server: ServerFactory, http2: bool,
                                                 coding: str) -> None:
    """A third-party client (httpx with its brotli and zlib decoders) reads the lab's
    coded bodies back to the identity body, and sees the headers the RFC asks for."""
    async with lab_server(protocols=("h1", "h2", "httpx", "httpx-h2")) as running, \
            httpx.AsyncClient(
            verify=_tls_context(running), http2=http2, timeout=TIMEOUT) as client:
        response = await client.get(
            f"https://127.0.0.1:{running.port('h2')}{RECORDS}",
            headers={"accept-encoding": f"{coding}, identity;q=0.1"})
        # The lab's own httpx client, with the knob, agrees.
        record = await _fetch(running, "httpx-h2" if http2 else "httpx", coding)
    assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    assert response.headers["content-encoding"] == coding
    assert response.headers["vary"] == "accept-encoding"
    assert response.headers["server-timing"].startswith("enc;dur=")
    assert response.num_bytes_downloaded == len(encode(IDENTITY, coding))  # type: ignore[arg-type]
    assert response.content == IDENTITY
    assert record.ok, record.error_detail
    assert record.content == IDENTITY
    assert record.body_bytes == response.num_bytes_downloaded
    assert record.transport["decoded_bytes"] == len(IDENTITY)


@pytest.mark.interop
@pytest.mark.asyncio
@pytest.mark.parametrize("option", ["--http1.1", "--http2"])
@pytest.mark.parametrize("coding", ["br", "gzip"])
async def test_curl_compressed_decodes_the_lab_servers_bodies(
    lab_server: ServerFactory, tmp_path: Path, option: str, coding: str,
) -> None:
    from tests.interop.peers import require

    curl = require("curl", "curl")
    body = tmp_path / "body"
    async with lab_server(protocols=("h1", "h2")) as running:
        assert running.certs is not None
        proc = await asyncio.create_subprocess_exec(
            curl, "--silent", "--show-error", option, "--compressed",
            "--header", f"accept-encoding: {coding}", "--max-time", str(TIMEOUT),
            "--cacert", str(running.certs.ca_file), "--output", str(body),
            "--write-out", "%{http_code} %{size_download} %{header_json}",
            f"https://127.0.0.1:{running.port('h2')}{RECORDS}",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 0, err.decode()
    status, size, headers = out.decode().split(" ", 2)
    assert status == "200"
    assert int(size) == len(encode(IDENTITY, coding))  # type: ignore[arg-type]
    assert f'"content-encoding":["{coding}"]' in headers.replace(" ", "")
    assert body.read_bytes() == IDENTITY  # curl decoded it


# --- gRPC gzip, measured on the wire ----------------------------------------------------------

class _Relay:
    """A TCP relay counting the bytes each way (the gRPC wire, outside grpcio)."""

    def __init__(self, port: int) -> None:
        self.port, self.to_client, self.to_server = port, 0, 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    down: bool) -> None:
        try:
            while data := await reader.read(65_536):
                if down:
                    self.to_client += len(data)
                else:
                    self.to_server += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        await asyncio.gather(self._pipe(reader, up_writer, down=False),
                             self._pipe(up_reader, writer, down=True))


@contextlib.asynccontextmanager
async def _relay(port: int) -> AsyncIterator[tuple[_Relay, int]]:
    relay = _Relay(port)
    server = await asyncio.start_server(relay.handle, "127.0.0.1", 0)
    try:
        yield relay, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["grpc", "grpc-stub"])
async def test_grpc_gzip_replies_are_smaller_on_the_wire(lab_server: ServerFactory,
                                                         protocol: str) -> None:
    path = "/Records?count=650"
    wire: dict[str, int] = {}
    records: dict[str, RequestRecord] = {}
    for coding in ("identity", "gzip"):
        async with lab_server(protocols=("grpc",), certs=None,
                              grpc=GrpcSettings(compression=coding)) as running:
            async with _relay(running.port("grpc")) as (relay, port):
                target = replace(target_for(running, "grpc"), port=port)
                client = make_client(protocol, target, grpc_compression=coding)
                try:
                    records[coding] = await client.request(Request(path=path, keep_body=True))
                finally:
                    await client.close()
            wire[coding] = relay.to_client
    for record in records.values():
        assert record.ok, record.error_detail
    # The same protobuf after grpcio decompressed it; a third of the bytes on the wire.
    assert records["gzip"].body_bytes == records["identity"].body_bytes > 100_000
    if protocol == "grpc":
        assert records["gzip"].content == records["identity"].content
    assert wire["identity"] > records["identity"].body_bytes
    assert wire["gzip"] < 0.6 * wire["identity"]


# --- the suite on a slow emulated link --------------------------------------------------------

def test_compression_suite_is_bundled_with_claims() -> None:
    full, short = load_suite("compression"), load_suite("compression", short=True)
    assert short.repetitions < full.repetitions
    assert {c.metric for c in full.claims} >= {"body_bytes", "total_reused",
                                               "server_encode_ms", "decoded_bytes"}
    labels = {v.label: v for v in full.variants}
    assert labels["br11-h2"].brotli_quality == 11
    assert labels["br-h2"].client_options()["accept_encoding"] == "br"


@pytest.mark.netem
@pytest.mark.slow
def test_coded_bodies_cross_the_slow_link_in_fewer_bytes(tmp_path: Path) -> None:
    from protolab.bench.session import run_bench
    from protolab.netem.privileges import missing
    from protolab.store import ResultsStore

    lacking = missing()
    if lacking:
        pytest.skip(f"the emulated link cannot be built here: {'; '.join(lacking)}")
    base = load_suite("compression")
    keep = {"identity-h2", "gzip-h2", "br-h2"}
    suite = replace(base, repetitions=1, warmup=0,
                    variants=tuple(v for v in base.variants if v.label in keep),
                    claims=tuple(c for c in base.claims
                                 if {c.a.variant, c.b.variant if c.b else ""} <= keep),
                    workload=replace(base.workload, paths=("/records?count=650",), count=3))
    with ResultsStore(tmp_path / "lab.db") as store:
        result = run_bench(suite, store, tmp_path / "out")
        cells = {c.params["label"]: store.samples(c.id) for c in store.cells(result.run_id)}
    assert result.status == "complete"
    for label, recs in cells.items():
        assert len(recs) == 3, label
        assert all(r.ok for r in recs), (label, [r.error_detail for r in recs])
        assert all(r.transport.get("decoded_bytes", r.body_bytes) == 251_744 for r in recs)

    def median(metric: str, label: str) -> float:
        values = sorted(METRICS[metric][1](CellView(label, {}, 50.0, cells[label])))
        return values[len(values) // 2]

    identity = median("body_bytes", "identity-h2")
    for label in ("gzip-h2", "br-h2"):
        assert median("body_bytes", label) < 0.5 * identity
        # 180 KB fewer at 5 Mbit/s is ~290 ms of serialisation: far outside any noise.
        assert median("total_reused", label) < median("total_reused", "identity-h2") - 100
    assert all(v.verdict in ("holds", "refuted", "inconclusive") for v in result.verdicts)
