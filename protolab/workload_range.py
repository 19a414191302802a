"""Range requests (RFC 9110 §14): the part of a fixed body that a Range header selects.

Only the GETs of fixed bodies answer ranges (`WorkloadResponse.accept_ranges`, set by
protolab.workload's `plan`): one satisfiable range is a 206 with that part, none a 416,
anything else the whole body.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Literal

from protolab.workload_response import Body, WorkloadResponse

# A position of more digits is past any body here (N <= 1 GiB): read as "huge", never
# parsed (Python refuses int() of more than 4300 digits).
_DIGITS = 18
_HUGE = 10**_DIGITS
_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")

RangeChoice = tuple[int, int] | Literal["whole", "unsatisfiable"]


def _position(raw: str) -> int:
    return int(raw) if len(raw) <= _DIGITS else _HUGE


def choose_range(header: str, length: int) -> RangeChoice:
    """What a Range header asks of a representation of `length` bytes (RFC 9110 §14.1):
    `(first, last)`, inclusive, when it asks for one satisfiable range; "unsatisfiable"
    when none of its ranges overlaps the body (first-pos >= length, or a suffix of 0
    bytes); "whole" when the answer is the whole body, a 200: the header does not parse
    or has an invalid int-range (last < first: §14.2 lets a server ignore it), names a
    unit other than bytes (§14.2: ignored), asks for several ranges of which some are
    satisfiable (§14.2 lets a server answer those with the whole representation; no
    multipart/byteranges here), or asks for a suffix of an empty body (a 206 could not
    say which bytes: Content-Range has no form for an empty part)."""
    unit, equals, spec = header.strip(" \t").partition("=")
    if not equals or unit.lower() != "bytes":
        return "whole"
    wanted: list[tuple[int | None, int | None]] = []  # (first, last); first None: suffix
    for element in spec.split(","):  # 1#range-spec: empty elements are allowed (§5.6.1)
        element = element.strip(" \t")
        if not element:
            continue
        found = _RANGE_SPEC.fullmatch(element)
        if found is None or not (found.group(1) or found.group(2)):
            return "whole"
        first = _position(found.group(1)) if found.group(1) else None
        last = _position(found.group(2)) if found.group(2) else None
        if first is not None and last is not None and last < first:
            return "whole"
        wanted.append((first, last))
    if not wanted:
        return "whole"
    parts = []
    for first, last in wanted:
        if first is None:  # suffix-range: the last `last` bytes
            assert last is not None  # the pattern above needs one of the two
            if last > 0 and length > 0:
                parts.append((max(0, length - last), length - 1))
            elif last > 0:
                return "whole"
        elif first < length:
            parts.append((first, length - 1 if last is None else min(last, length - 1)))
    if not parts:
        return "unsatisfiable"
    return parts[0] if len(wanted) == 1 else "whole"


def select_range(response: WorkloadResponse, header: str | None) -> WorkloadResponse:
    """`response`, or the part of it that the request's Range header (None: absent)
    selects: a 206 (Partial Content) with `content-range: bytes FIRST-LAST/LENGTH` and
    that part of the body, or a 416 with `content-range: bytes */LENGTH`. Only a fixed
    body answers ranges (`accept_ranges`, set by `plan` on a GET's 200); the part is cut
    from the body as it is, so when the body was content-coded the range counts bytes of
    the coded body (the representation sent, RFC 9110 §14.1.1), and a client that joins
    parts of equal requests joins parts of one byte string."""
    if header is None or not response.accept_ranges or response.status != 200:
        return response
    length = response.body.length
    choice = choose_range(header, length)
    if choice == "whole":
        return response
    if choice == "unsatisfiable":
        text = f"no requested range overlaps this body of {length} bytes\n".encode()
        return WorkloadResponse(416, "text/plain; charset=utf-8", Body(len(text), text),
                                extra_headers=(("content-range", f"bytes */{length}"),),
                                accept_ranges=True)
    first, last = choice
    body = response.body
    size = last - first + 1
    part = (Body(size, body.literal[first:last + 1]) if body.literal is not None
            else Body(size, offset=body.offset + first))
    return dataclasses.replace(
        response, status=206, body=part,
        extra_headers=(*response.extra_headers,
                       ("content-range", f"bytes {first}-{last}/{length}")))

