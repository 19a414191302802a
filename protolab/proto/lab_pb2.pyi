import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SizeRequest(_message.Message):
    __slots__ = ("size", "body")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    size: int
    body: bytes
    def __init__(self, size: _Optional[int] = ..., body: _Optional[bytes] = ...) -> None: ...

class Payload(_message.Message):
    __slots__ = ("seq", "sent_ns", "data")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SENT_NS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    seq: int
    sent_ns: int
    data: bytes
    def __init__(self, seq: _Optional[int] = ..., sent_ns: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class StreamRequest(_message.Message):
    __slots__ = ("count", "size", "interval_ms")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    count: int
    size: int
    interval_ms: int
    def __init__(self, count: _Optional[int] = ..., size: _Optional[int] = ..., interval_ms: _Optional[int] = ...) -> None: ...

class StreamSummary(_message.Message):
    __slots__ = ("messages", "bytes", "first_ns", "last_ns")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    FIRST_NS_FIELD_NUMBER: _ClassVar[int]
    LAST_NS_FIELD_NUMBER: _ClassVar[int]
    messages: int
    bytes: int
    first_ns: int
    last_ns: int
    def __init__(self, messages: _Optional[int] = ..., bytes: _Optional[int] = ..., first_ns: _Optional[int] = ..., last_ns: _Optional[int] = ...) -> None: ...

class RecordsRequest(_message.Message):
    __slots__ = ("count", "seed")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    count: int
    seed: int
    def __init__(self, count: _Optional[int] = ..., seed: _Optional[int] = ...) -> None: ...

class Location(_message.Message):
    __slots__ = ("lat", "lon", "city")
    LAT_FIELD_NUMBER: _ClassVar[int]
    LON_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    lat: float
    lon: float
    city: str
    def __init__(self, lat: _Optional[float] = ..., lon: _Optional[float] = ..., city: _Optional[str] = ...) -> None: ...

class Owner(_message.Message):
    __slots__ = ("id", "name", "email")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    email: str
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., email: _Optional[str] = ...) -> None: ...

class Record(_message.Message):
    __slots__ = ("id", "name", "score", "price", "active", "created", "tags", "location", "owner", "samples")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    score: float
    price: float
    active: bool
    created: _timestamp_pb2.Timestamp
    tags: _containers.RepeatedScalarFieldContainer[str]
    location: Location
    owner: Owner
    samples: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., score: _Optional[float] = ..., price: _Optional[float] = ..., active: _Optional[bool] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tags: _Optional[_Iterable[str]] = ..., location: _Optional[_Union[Location, _Mapping]] = ..., owner: _Optional[_Union[Owner, _Mapping]] = ..., samples: _Optional[_Iterable[float]] = ...) -> None: ...

class RecordList(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[Record]
    def __init__(self, records: _Optional[_Iterable[_Union[Record, _Mapping]]] = ...) -> None: ...
