"""The structured records served as protobuf (gRPC `Records`) and as JSON (`GET /records`).

One pure generator for both, so a gRPC-vs-REST comparison moves the same data:
record i depends only on (seed, i), so the first N records are the same whatever
N is asked for, and the same on every run. Floats are generated as doubles and
timestamps as whole milliseconds, so both encodings carry them exactly (JSON via
`repr` round-tripping, protobuf as `double` and `Timestamp`).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_SEED = 1
# 2024-01-01T00:00:00Z in ms; records are a minute and a bit apart from there.
_EPOCH_MS = 1_704_067_200_000
_WORDS = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
    "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo",
)
_CITIES = ("Lisbon", "Oslo", "Kyoto", "Quito", "Nairobi", "Perth", "Montréal", "Zürich")


@dataclass(frozen=True)
class Location:
    lat: float
    lon: float
    city: str


@dataclass(frozen=True)
class Owner:
    id: int
    name: str
    email: str


@dataclass(frozen=True)
class Record:
    id: int
    name: str
    score: float
    price: float
    active: bool
    created_ms: int  # Unix time in whole milliseconds (UTC)
    tags: tuple[str, ...]
    location: Location
    owner: Owner
    samples: tuple[float, ...]


def make_record(index: int, seed: int = DEFAULT_SEED) -> Record:
    """Record number `index` of the data set `seed` (pure, deterministic)."""
    rng = random.Random(seed * 1_000_003 + index)
    first, second = rng.choice(_WORDS), rng.choice(_WORDS)
    owner_id = rng.randrange(1, 10_000)
    return Record(
        id=seed * 10_000_000 + index,
        name=f"{first}-{second}-{index}",
        score=rng.random() * 100,
        price=round(rng.uniform(0.5, 500), 2),
        active=rng.random() < 0.7,
        created_ms=_EPOCH_MS + index * 61_237 + rng.randrange(1000),
        tags=tuple(rng.sample(_WORDS, rng.randrange(0, 4))),
        location=Location(
            lat=rng.uniform(-90, 90), lon=rng.uniform(-180, 180), city=rng.choice(_CITIES)
        ),
        owner=Owner(id=owner_id, name=f"{second.title()} {first.title()}",
                    email=f"{first}.{owner_id}@example.org"),
        samples=tuple(rng.gauss(0, 1) for _ in range(rng.randrange(2, 6))),
    )


def make_records(count: int, seed: int = DEFAULT_SEED) -> list[Record]:
    return [make_record(i, seed) for i in range(count)]


def iso_ms(ms: int) -> str:
    """RFC 3339 UTC with milliseconds, as protobuf's JSON mapping writes a Timestamp."""
    when = dt.datetime.fromtimestamp(ms / 1000, dt.UTC).replace(microsecond=(ms % 1000) * 1000)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_iso_ms(text: str) -> int:
    when = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    return int(when.timestamp()) * 1000 + when.microsecond // 1000


def record_to_json(record: Record) -> dict[str, Any]:
    data = asdict(record)
    data["created"] = iso_ms(data.pop("created_ms"))
    data["tags"], data["samples"] = list(record.tags), list(record.samples)
    return data


def record_from_json(data: dict[str, Any]) -> Record:
    return Record(
        id=int(data["id"]), name=str(data["name"]), score=float(data["score"]),
        price=float(data["price"]), active=bool(data["active"]),
        created_ms=parse_iso_ms(data["created"]), tags=tuple(data["tags"]),
        location=Location(**data["location"]), owner=Owner(**data["owner"]),
        samples=tuple(float(s) for s in data["samples"]),
    )


def records_json(records: list[Record], *, gzipped: bool = False) -> bytes:
    """The /records body: {"records": [...]} compact; gzip level 6 (the usual server default);
    mtime 0 so the compressed bytes are deterministic too."""
    text = json.dumps(
        {"records": [record_to_json(r) for r in records]}, separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    return gzip.compress(text, compresslevel=6, mtime=0) if gzipped else text


def records_from_json(body: bytes) -> list[Record]:
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    return [record_from_json(item) for item in json.loads(body)["records"]]
