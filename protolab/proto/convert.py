"""protolab.records <-> protobuf messages (the Records call), exact in both directions."""

from __future__ import annotations

from protolab.proto import lab_pb2
from protolab.records import Location, Owner, Record


def record_to_proto(record: Record) -> lab_pb2.Record:
    message = lab_pb2.Record(
        id=record.id, name=record.name, score=record.score, price=record.price,
        active=record.active, tags=list(record.tags), samples=list(record.samples),
        location=lab_pb2.Location(
            lat=record.location.lat, lon=record.location.lon, city=record.location.city),
        owner=lab_pb2.Owner(id=record.owner.id, name=record.owner.name,
                            email=record.owner.email),
    )
    message.created.FromMilliseconds(record.created_ms)
    return message


def record_from_proto(message: lab_pb2.Record) -> Record:
    return Record(
        id=message.id, name=message.name, score=message.score, price=message.price,
        active=message.active, created_ms=message.created.ToMilliseconds(),
        tags=tuple(message.tags),
        location=Location(message.location.lat, message.location.lon, message.location.city),
        owner=Owner(message.owner.id, message.owner.name, message.owner.email),
        samples=tuple(message.samples),
    )


def records_to_proto(records: list[Record]) -> lab_pb2.RecordList:
    return lab_pb2.RecordList(records=[record_to_proto(r) for r in records])


def records_from_proto(data: bytes) -> list[Record]:
    return [record_from_proto(m) for m in lab_pb2.RecordList.FromString(data).records]
