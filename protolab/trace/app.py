"""The first application messages: HTTP/1.1 request and status lines, HTTP/2 frames (with
HPACK-decoded HEADERS via the `hpack` library the h2 stack already uses).

Each `feed()` takes the next bytes of one direction and returns the messages completed by
them, each as (name, fields, is_request_or_response).
"""

from __future__ import annotations

import struct
from typing import Any

import hpack

from protolab.trace.codepoints import h2_error_name, h2_setting_name

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_FRAMES = {0: "DATA", 1: "HEADERS", 2: "PRIORITY", 3: "RST_STREAM", 4: "SETTINGS",
             5: "PUSH_PROMISE", 6: "PING", 7: "GOAWAY", 8: "WINDOW_UPDATE", 9: "CONTINUATION"}

AppMessage = tuple[str, dict[str, Any], bool]
WS_OPCODES = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}


ALPN_HTTP2 = "h2"  # the ALPN token of HTTP/2 over TLS (RFC 9113 §3.2), a wire identifier


class AppDecoder:
    """One direction of HTTP/1.1 or HTTP/2 (chosen by ALPN, or by the preface)."""

    def __init__(self, alpn: str | None) -> None:
        self.alpn = alpn
        self.buf = b""
        self.h2: bool | None = True if alpn == ALPN_HTTP2 else (False if alpn else None)
        self.preface_seen = False
        self.hpack = hpack.Decoder()
        self.h1_started = False
        self.grpc_streams: set[int] = set()  # HEADERS said content-type application/grpc
        self.websocket = False  # after an Upgrade: websocket head, frames follow (RFC 6455)
        self.broken = False

    def feed(self, data: bytes) -> list[AppMessage]:
        if self.broken:
            return []
        self.buf += data
        if self.h2 is None:
            if len(self.buf) < len(H2_PREFACE) and H2_PREFACE.startswith(self.buf):
                return []
            self.h2 = self.buf.startswith(H2_PREFACE) or self._looks_like_h2_frame()
        return self._h2() if self.h2 else self._h1()

    def _looks_like_h2_frame(self) -> bool:
        return len(self.buf) >= 9 and self.buf[3] == 4 and self.buf[5:9] == b"\0\0\0\0"

    def _h1(self) -> list[AppMessage]:
        if self.websocket:
            return self._ws()
        if self.h1_started:
            self.buf = b""
            return []
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return []
        head = self.buf[:end].decode("latin-1").split("\r\n")
        self.h1_started, self.buf = True, self.buf[end + 4:]
        first = head[0]
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
        fields: dict[str, Any] = {"line": first, "headers": len(head) - 1, "head_bytes": end + 4}
        for name in ("upgrade", "content-type", "content-length"):
            if name in headers:
                fields[name] = headers[name]
        label = "HTTP response" if first.startswith("HTTP/") else "HTTP request"
        out: list[AppMessage] = [(f"{label}: {first}", fields, True)]
        if headers.get("upgrade", "").lower() == "websocket":
            self.websocket = True
            out += self._ws()
        else:
            self.buf = b""
        return out

    def _ws(self) -> list[AppMessage]:
        out: list[AppMessage] = []
        while len(self.buf) >= 2:
            b0, b1 = self.buf[0], self.buf[1]
            length, pos = b1 & 0x7F, 2
            if length == 126:
                if len(self.buf) < 4:
                    break
                length, pos = int.from_bytes(self.buf[2:4], "big"), 4
            elif length == 127:
                if len(self.buf) < 10:
                    break
                length, pos = int.from_bytes(self.buf[2:10], "big"), 10
            masked = bool(b1 & 0x80)
            pos += 4 if masked else 0
            if len(self.buf) < pos + length:
                break
            self.buf = self.buf[pos + length:]
            opcode = WS_OPCODES.get(b0 & 0x0F, f"opcode {b0 & 0x0F}")
            out.append((f"WebSocket {opcode}", {"length": length, "fin": bool(b0 & 0x80),
                                                "masked": masked, "header_bytes": pos}, False))
        return out

    def _h2(self) -> list[AppMessage]:
        out: list[AppMessage] = []
        if not self.preface_seen and self.buf.startswith(H2_PREFACE):
            self.buf = self.buf[len(H2_PREFACE):]
            self.preface_seen = True
            out.append(("HTTP/2 preface", {"bytes": len(H2_PREFACE)}, False))
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[:3], "big")
            ftype, flags = self.buf[3], self.buf[4]
            stream = struct.unpack_from("!I", self.buf, 5)[0] & 0x7FFFFFFF
            if len(self.buf) < 9 + length:
                break
            payload, self.buf = self.buf[9:9 + length], self.buf[9 + length:]
            name = H2_FRAMES.get(ftype, f"frame({ftype})")
            fields: dict[str, Any] = {"stream": stream, "length": length, "flags": flags}
            if ftype == 4 and not flags & 1:
                fields["settings"] = {
                    h2_setting_name(k): v
                    for k, v in (struct.unpack_from("!HI", payload, i)
                                 for i in range(0, length - length % 6, 6))
                }
            elif ftype == 4:
                name = "SETTINGS ack"
            elif ftype == 1:
                fields.update(self._headers(payload, flags))
                ctype = fields.get("headers", {}).get("content-type", "")
                if ctype.startswith("application/grpc"):
                    self.grpc_streams.add(stream)
            elif ftype == 0 and stream in self.grpc_streams and length >= 5:
                # gRPC's length-prefixed message: 1-byte compressed flag, 4-byte length.
                fields["grpc_compressed"] = bool(payload[0])
                fields["grpc_message_bytes"] = int.from_bytes(payload[1:5], "big")
                name = "DATA (gRPC message)"
            elif ftype == 8 and length >= 4:
                fields["increment"] = struct.unpack_from("!I", payload)[0] & 0x7FFFFFFF
            elif ftype == 3 and length >= 4:
                fields["error"] = h2_error_name(struct.unpack_from("!I", payload)[0])
            elif ftype == 7 and length >= 8:
                last, code = struct.unpack_from("!II", payload)
                fields["last_stream"], fields["error"] = last & 0x7FFFFFFF, h2_error_name(code)
            out.append((f"HTTP/2 {name}", fields, stream != 0 and ftype in (0, 1)))
        return out

    def _headers(self, payload: bytes, flags: int) -> dict[str, Any]:
        pos = 0
        if flags & 0x08 and payload:  # PADDED
            pad, pos = payload[0], 1
            payload = payload[:len(payload) - pad]
        if flags & 0x20:  # PRIORITY
            pos += 5
        try:
            headers = self.hpack.decode(payload[pos:])
        except Exception as exc:  # noqa: BLE001 - hpack raises a family of its own errors
            self.broken = True
            return {"error": f"HPACK: {type(exc).__name__}"}
        return {"headers": {str(k): str(v) for k, v in headers}, "block_bytes": len(payload)}
