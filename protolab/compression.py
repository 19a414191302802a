"""HTTP content codings: `Accept-Encoding` negotiation, the one place responses are
compressed, and the decoder the lab's clients run on what arrives.

Server side (pure except for the clock read around the encoder):

- `negotiate(header)` reads `Accept-Encoding` as RFC 9110 §12.5.3 defines it and picks
  `br`, `gzip` or `identity`. Absent header: identity (the RFC lets a server choose
  anything; the lab compresses only when asked). A q-value of 0 refuses a coding; `*`
  stands for every coding not listed; unknown codings are ignored; `x-gzip` is gzip
  (§8.4.1.3); at equal q the server prefers br, then gzip, then identity. A header that
  does not parse (a bad q-value, a parameter other than q, a non-token) means identity,
  never an error — and so does a header that refuses identity and offers nothing the
  server has (RFC 9110 lets the server answer 415 or identity; the lab keeps answering).
- `encode_response(response, accept_encoding, settings)` compresses a response once,
  whatever protocol will carry it: only a literal body of a compressible type (JSON,
  text) of at least `min_size` bytes, not already coded. It sets `content-encoding`,
  `vary: accept-encoding` (on every response the header could have changed, identity
  included) and `server-timing: enc;dur=MS;desc="br q5"` — the W3C Server Timing
  header, in milliseconds, measured with the lab's one clock (protolab/timing.py)
  around the encoder alone.
- Levels (`CompressionSettings`): gzip 6 (zlib's default, Apache's mod_deflate default,
  and the level of the older `/records?gzip=1`); brotli quality 5 — what on-the-fly
  servers use for dynamic responses (nginx's ngx_brotli defaults to 6, Cloudflare used 4),
  not brotli's library default 11, which is meant for precompressed static files and is
  many times slower (benchmarks/compression.py prints the whole curve).

Client side: `BodyDecoder` decodes a coded body incrementally as it arrives, so the
decoding time is inside the request's timeline as an application's would be; `finish`
checks that the stream was complete (gzip's CRC and length, brotli's last block) and
gives the counters a record keeps in `transport`: `decoded_bytes` (the body after
decoding), `decode_us` (client CPU time in the decoder) and `server_encode_us` (the
server's Server-Timing `enc` duration). `body_bytes` stays the body as it crossed the
wire.
"""

from __future__ import annotations

import dataclasses
import gzip
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

import brotli

from protolab.errors import ConfigError
from protolab.timing import now_ns
from protolab.workload import Body, WorkloadResponse

Coding = Literal["br", "gzip", "identity"]
CODINGS: tuple[Coding, ...] = ("br", "gzip", "identity")  # server preference at equal q
_ALIASES = {"x-gzip": "gzip"}  # RFC 9110 §8.4.1.3
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# weight = OWS ";" OWS "q=" qvalue;  qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
_WEIGHT = re.compile(r"[qQ]=(0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)")
_COMPRESSIBLE = re.compile(r"^(?:text/[a-z0-9.+-]+|application/(?:[a-z0-9.-]+\+)?json)$")


@dataclass(frozen=True)
class CompressionSettings:
    """What the server compresses and how hard (suite knobs `gzip_level`, `brotli_quality`)."""

    gzip_level: int = 6  # zlib 1..9
    brotli_quality: int = 5  # brotli 0..11
    min_size: int = 256  # smaller bodies are sent as they are (a coding's header costs ~20 B)

    def __post_init__(self) -> None:
        if not 1 <= self.gzip_level <= 9:
            raise ConfigError(f"gzip level must be 1..9, got {self.gzip_level}")
        if not 0 <= self.brotli_quality <= 11:
            raise ConfigError(f"brotli quality must be 0..11, got {self.brotli_quality}")
        if self.min_size < 0:
            raise ConfigError("the smallest body to compress cannot be negative")


DEFAULT_COMPRESSION = CompressionSettings()


def parse_accept_encoding(value: str) -> dict[str, float] | None:
    """coding -> q-value (lower-case names, `x-gzip` as gzip), or None when the header
    does not parse. Empty list elements are allowed (RFC 9110 §5.6.1); a coding listed
    twice keeps its lowest q (a refusal is never overridden)."""
    prefs: dict[str, float] = {}
    for element in value.split(","):
        element = element.strip(" \t")
        if not element:
            continue
        name, semi, params = element.partition(";")
        name = name.strip(" \t").lower()
        if not _TOKEN.fullmatch(name):
            return None
        q = 1.0
        if semi:
            weight = _WEIGHT.fullmatch(params.strip(" \t"))
            if weight is None:
                return None
            q = float(weight.group(1))
        name = _ALIASES.get(name, name)
        prefs[name] = min(q, prefs.get(name, q))
    return prefs


def negotiate(header: str | None, available: Iterable[Coding] = CODINGS) -> Coding:
    """The coding to answer with, for the request's `Accept-Encoding` (None: absent)."""
    if header is None:
        return "identity"
    prefs = parse_accept_encoding(header)
    if prefs is None:
        return "identity"
    star = prefs.get("*")
    best: tuple[float, int, Coding] = (0.0, 0, "identity")
    offered = tuple(available)
    for rank, coding in enumerate(reversed(CODINGS)):  # identity ranks lowest at equal q
        if coding not in offered:
            continue
        if coding in prefs:
            q = prefs[coding]
        elif star is not None:
            q = star
        else:
            # identity is acceptable unless refused; unlisted, it yields to any listed coding
            q = 0.0005 if coding == "identity" else 0.0
        if q > 0 and (q, rank) > best[:2]:
            best = (q, rank, coding)
    return best[2]


def compressible(content_type: str) -> bool:
    """JSON and text compress; the /bytes pattern (application/octet-stream) is not sent
    coded (it is incompressible data in the workload's model of a download)."""
    return bool(_COMPRESSIBLE.match(content_type.split(";", 1)[0].strip().lower()))


def encode(data: bytes, coding: Coding, settings: CompressionSettings = DEFAULT_COMPRESSION,
           ) -> bytes:
    """`data` in `coding`; gzip with mtime 0, so equal bodies give equal bytes."""
    if coding == "br":
        out: bytes = brotli.compress(data, mode=brotli.MODE_TEXT,
                                     quality=settings.brotli_quality)
        return out
    if coding == "gzip":
        return gzip.compress(data, compresslevel=settings.gzip_level, mtime=0)
    return data


def decode(data: bytes, coding: str) -> bytes:
    """The body before `coding` was applied (for tests and tools; clients use BodyDecoder)."""
    if coding == "identity":
        return data
    decoder = BodyDecoder(coding, keep=True)
    decoder.feed(data)
    decoder.finish()
    return decoder.decoded or b""


def encode_response(response: WorkloadResponse, accept_encoding: str | None,
                    settings: CompressionSettings = DEFAULT_COMPRESSION) -> WorkloadResponse:
    """`response` in the coding `accept_encoding` asks for, when it can be coded at all
    (see the module docstring); otherwise `response` itself."""
    literal = response.body.literal
    if (literal is None or response.stream is not None or response.push is not None
            or len(literal) < settings.min_size or not compressible(response.content_type)
            or any(name == "content-encoding" for name, _ in response.extra_headers)):
        return response
    coding = negotiate(accept_encoding)
    vary = ("vary", "accept-encoding")
    if coding == "identity":
        return dataclasses.replace(response, extra_headers=(*response.extra_headers, vary))
    started = now_ns()
    encoded = encode(literal, coding, settings)
    took_ms = (now_ns() - started) / 1e6
    level = (f"q{settings.brotli_quality}" if coding == "br" else f"level {settings.gzip_level}")
    timing = ("server-timing", f'enc;dur={took_ms:.3f};desc="{coding} {level}"')
    return dataclasses.replace(
        response, body=Body(len(encoded), encoded),
        extra_headers=(*response.extra_headers, ("content-encoding", coding), vary, timing))


def header_value(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """A field's value, its lines joined with ", " (RFC 9110 §5.3); None when absent."""
    values = [value.decode("latin-1").strip(" \t") for key, value in headers
              if key.lower() == name]
    return ", ".join(values) if values else None


# --- client side ------------------------------------------------------------------------


class CodingError(Exception):
    """A coded body that does not decode (corrupt, truncated, or an unknown coding)."""


class _Recorder(Protocol):
    """What `BodyDecoder.apply` needs of a client's timeline (protolab.core.record.Timeline)."""

    transport: dict[str, int]
    content: bytearray | None

    def fail(self, kind: str, detail: str) -> None: ...


_SERVER_TIMING_ENC = re.compile(r"(?:^|,)\s*enc\s*;(?:[^,]*;)?\s*dur=([0-9]+(?:\.[0-9]+)?)")


class BodyDecoder:
    """Decodes one response body as it arrives (gzip or br), counting what it produced."""

    def __init__(self, coding: str, *, keep: bool = False, server_timing: str | None = None,
                 ) -> None:
        self.coding = coding
        self.decoded: bytes | None = None  # the whole decoded body, when kept
        self.decoded_bytes = 0
        self.decode_ns = 0
        self._keep = keep
        self._parts: list[bytes] = []
        self._failed: str | None = None
        self._server_us: int | None = None
        if server_timing is not None:
            found = _SERVER_TIMING_ENC.search(server_timing)
            if found:
                self._server_us = round(float(found.group(1)) * 1000)
        self._gzip: zlib._Decompress | None = None
        self._br: brotli.Decompressor | None = None
        if coding == "gzip":
            self._gzip = zlib.decompressobj(wbits=31)
        elif coding == "br":
            self._br = brotli.Decompressor()
        else:
            self._failed = f"unknown content-encoding {coding!r}"

    @classmethod
    def for_response(cls, headers: Iterable[tuple[bytes, bytes]], *, keep: bool = False,
                     ) -> BodyDecoder | None:
        """A decoder for a response with these headers; None when it is not coded."""
        listed = list(headers)
        coding = header_value(listed, b"content-encoding")
        if coding is None or coding.strip().lower() in ("", "identity"):
            return None
        return cls(coding.strip().lower(), keep=keep,
                   server_timing=header_value(listed, b"server-timing"))

    def feed(self, data: bytes | memoryview) -> None:
        if self._failed is not None or not data:
            return
        started = now_ns()
        try:
            if self._gzip is not None:
                if self._gzip.eof:
                    raise CodingError("data after the end of the gzip stream")
                out = self._gzip.decompress(data)
            elif self._br is not None:
                out = self._br.process(bytes(data))
            else:
                return
        except (zlib.error, brotli.error, CodingError) as exc:
            self._failed = f"{self.coding} body does not decode: {exc}"
            return
        finally:
            self.decode_ns += now_ns() - started
        self.decoded_bytes += len(out)
        if self._keep and out:
            self._parts.append(out)

    def finish(self) -> None:
        """Raise CodingError unless the coded stream decoded completely."""
        if self._failed is None:
            complete = (self._gzip.eof and not self._gzip.unused_data if self._gzip is not None
                        else self._br is not None and self._br.is_finished())
            if not complete:
                self._failed = f"{self.coding} body ends before its coded stream does"
        if self._failed is not None:
            raise CodingError(self._failed)
        if self._keep:
            self.decoded = b"".join(self._parts)

    def counters(self) -> dict[str, int]:
        out = {"decoded_bytes": self.decoded_bytes, "decode_us": self.decode_ns // 1000}
        if self._server_us is not None:
            out["server_encode_us"] = self._server_us
        return out

    def apply(self, tl: _Recorder) -> None:
        """Finish, then put the counters in the record's transport counters and, when the
        request keeps its body, the decoded body in `content`; a body that does not decode
        fails the request as `content_coding`."""
        try:
            self.finish()
        except CodingError as exc:
            tl.fail("content_coding", str(exc))
            return
        tl.transport.update(self.counters())
        if self.decoded is not None:
            tl.content = bytearray(self.decoded)


def with_accept_encoding(headers: tuple[tuple[str, str], ...], accept_encoding: str,
                         ) -> tuple[tuple[str, str], ...]:
    """Request headers with the client's `accept_encoding` option: when set, it replaces
    any accept-encoding the request carries (a variant's knob over the suite's header)."""
    if not accept_encoding:
        return headers
    return (*((n, v) for n, v in headers if n != "accept-encoding"),
            ("accept-encoding", accept_encoding))


def check_accept_encoding(value: str) -> str | None:
    """Why `value` is not an Accept-Encoding a client option may send, or None."""
    if value and parse_accept_encoding(value) is None:
        return (f"accept_encoding {value!r} is not an RFC 9110 Accept-Encoding value "
                "(e.g. \"br\", \"gzip\", \"br, gzip;q=0.8\", \"identity\")")
    return None
