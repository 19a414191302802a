"""Frozen settings dataclasses to JSON and back: an exact round trip, every key checked.

Field types say what a key may hold: str, int, float, bool, Path, a Literal's values,
`X | None`, `tuple[X, ...]` (a JSON list) and nested dataclasses (JSON objects). A key
that is unknown or holds the wrong type is a `ConfigError` naming it; a dataclass's own
`__post_init__` check is reported with the key of the object it guards. A key left out
takes the field's default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from protolab.errors import ConfigError

T = TypeVar("T")

_KINDS: dict[Any, tuple[tuple[type, ...], str]] = {
    str: ((str,), "a string"),
    int: ((int,), "an integer"),
    float: ((int, float), "a number"),
    bool: ((bool,), "true or false"),
    Path: ((str,), "a path (string)"),
}


def to_document(value: Any) -> Any:
    """`value` as JSON-ready data: dataclasses become objects, tuples lists, paths strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_document(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [to_document(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def from_document(cls: type[T], raw: object, what: str, key: str = "") -> T:
    """An instance of the dataclass `cls` from `raw` (a parsed JSON object)."""
    where = f"{what} key {key!r}" if key else what
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a JSON object, got {_shown(raw)}")
    init = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - init)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}",
                          hint=f"known keys: {', '.join(sorted(init))}")
    hints = typing.get_type_hints(cls)
    values = {name: _value(hints[name], item, what, f"{key}.{name}" if key else name)
              for name, item in raw.items()}
    try:
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.args[0]}", hint=exc.hint) from None


def _value(tp: Any, raw: object, what: str, key: str) -> Any:
    if dataclasses.is_dataclass(tp):
        return from_document(tp, raw, what, key)  # type: ignore[arg-type]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if raw is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _value(inner, raw, what, key)
    if origin is typing.Literal:
        if raw not in args or isinstance(raw, bool):
            raise ConfigError(f"{what} key {key!r} must be one of "
                              f"{', '.join(map(repr, args))}, got {_shown(raw)}")
        return raw
    if origin is tuple:
        if not isinstance(raw, list):
            raise ConfigError(f"{what} key {key!r} must be a list, got {_shown(raw)}")
        return tuple(_value(args[0], item, what, f"{key}[{i}]") for i, item in enumerate(raw))
    if tp not in _KINDS:
        raise TypeError(f"{what} key {key!r}: no JSON form for {tp!r}")  # a bug, not input
    accepted, name = _KINDS[tp]
    # bool is an int in Python, never in a document
    if not isinstance(raw, accepted) or (isinstance(raw, bool) and tp is not bool):
        raise ConfigError(f"{what} key {key!r} must be {name}, got {_shown(raw)}")
    if tp is Path:
        return Path(typing.cast(str, raw))
    return float(typing.cast(float, raw)) if tp is float else raw


def _shown(raw: object) -> str:
    return "null" if raw is None else repr(raw)
