"""The knob catalogue (protolab/knobs.py) is the one place a variant's knobs are declared."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from protolab import knobs, registry
from protolab.bench.suite import Variant, parse_suite
from protolab.errors import ConfigError

VARIANT_FIELDS = {f.name for f in dataclasses.fields(Variant)} - {"label", "protocol"}


def _other_value(name: str) -> Any:
    """A value of knob `name` the catalogue allows, other than its default."""
    info, default = knobs.KNOBS[name], knobs.KNOB_DEFAULTS[name]
    if info.choices:
        return next(c for c in info.choices if c != default)
    if info.low is not None:
        return info.low if info.low != default else info.high
    return "gzip"  # accept_encoding, the one free-form knob


def test_the_catalogue_is_the_one_source_of_the_knobs() -> None:
    assert set(knobs.KNOB_DEFAULTS) == VARIANT_FIELDS
    assert Variant(label="x", protocol="h2").knobs() == dict(knobs.KNOB_DEFAULTS)
    assert registry.KNOB_DEFAULTS is knobs.KNOB_DEFAULTS  # re-exported, not copied
    assert registry.SERVER_KNOBS == knobs.SERVER_KNOBS == tuple(
        name for name, info in knobs.KNOBS.items() if info.server)
    assert "tls_version" in knobs.SERVER_KNOBS
    assert "connections" not in knobs.SERVER_KNOBS


@pytest.mark.parametrize("name", list(knobs.KNOBS))
def test_every_knob_says_what_it_allows_and_what_it_is(name: str) -> None:
    info, default = knobs.KNOBS[name], knobs.KNOB_DEFAULTS[name]
    assert info.doc
    assert (info.low is not None and info.high is not None) or info.choices or info.check
    assert info.server or info.client, f"{name}: neither side takes it"
    assert knobs.value_problem(name, default) is None, f"{name}: its default is refused"
    assert knobs.value_problem(name, _other_value(name)) is None


def test_client_knobs_are_the_ones_protocols_take_by_their_options_names() -> None:
    taken = {k for spec in registry.PROTOCOLS.values() for k in spec.knobs}
    assert taken == set(knobs.CLIENT_KNOBS)
    for spec in registry.PROTOCOLS.values():
        options = {f.name: f for f in dataclasses.fields(registry._load(spec.options))}
        for name in spec.knobs:
            assert options[name].default == knobs.KNOB_DEFAULTS[name], (
                f"{spec.name}: its client's {name} defaults otherwise than the catalogue")


RANGED = [name for name, info in knobs.KNOBS.items() if info.low is not None]
CHOSEN = [name for name, info in knobs.KNOBS.items() if info.choices and name not in RANGED
          and info.choices != (False, True)]


@pytest.mark.parametrize("name", RANGED)
def test_a_value_out_of_range_is_one_error_naming_the_range(name: str) -> None:
    info = knobs.KNOBS[name]
    assert info.low is not None
    assert info.high is not None
    for value in (info.low - 1, info.high + 1):
        with pytest.raises(ConfigError) as caught:
            parse_suite({"variant": [{"protocol": "h3", name: value}]}, "my.toml")
        assert str(caught.value) == (f"my.toml: variant 1: {name} must be an integer in "
                                     f"{info.low}..{info.high}, got {value}")


@pytest.mark.parametrize("name", CHOSEN)
def test_a_value_not_among_the_choices_is_one_error_naming_them(name: str) -> None:
    choices = ", ".join(str(c) for c in knobs.KNOBS[name].choices)
    with pytest.raises(ConfigError) as caught:
        parse_suite({"variant": [{"protocol": "h2", name: "nonsense"}]}, "my.toml")
    assert str(caught.value) == (f"my.toml: variant 1: {name} must be one of {choices}, "
                                 "got 'nonsense'")


def test_a_value_of_the_wrong_type_names_what_is_allowed() -> None:
    with pytest.raises(ConfigError, match=r"connections has the wrong type \(bool: True\); "
                                          r"it must be an integer in 1\.\.256"):
        parse_suite({"variant": [{"protocol": "h1", "connections": True}]})
    with pytest.raises(ConfigError, match="keepalive has the wrong type .* true or false"):
        parse_suite({"variant": [{"protocol": "h1", "keepalive": "yes"}]})


def test_a_knob_the_protocol_does_not_take_is_refused_unless_at_its_default() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_suite({"variant": [{"protocol": "h2", "connections": 2}]}, "my.toml")
    assert str(caught.value) == ("my.toml: variant 1: h2: its client does not take "
                                 "connections (the clients of h1 do)")
    # Named at its default, a knob is no mistake, whichever protocol's it is.
    for name in registry.NAMES:
        suite = parse_suite({"variant": [{"protocol": name, **knobs.KNOB_DEFAULTS}]})
        assert suite.variants[0].knobs() == dict(knobs.KNOB_DEFAULTS)


@pytest.mark.parametrize("protocol", registry.NAMES)
def test_every_client_knob_a_protocol_does_not_take_is_refused(protocol: str) -> None:
    spec = registry.get(protocol)
    for name in set(knobs.CLIENT_KNOBS) - set(spec.knobs):
        with pytest.raises(ConfigError) as caught:
            parse_suite({"variant": [{"protocol": protocol, name: _other_value(name)}]})
        assert name in str(caught.value)


def test_server_knobs_need_no_client_to_take_them() -> None:
    server_only = [n for n in knobs.SERVER_KNOBS if n not in knobs.CLIENT_KNOBS]
    assert "data_frame" in server_only
    # tls and tls_version are the protocol's business (gRPC cannot pin a TLS version).
    table = {name: _other_value(name) for name in server_only
             if name not in ("tls", "tls_version")}
    (variant,) = parse_suite({"variant": [{"protocol": "grpc", **table}]}).variants
    assert {name: getattr(variant, name) for name in table} == table


def test_a_variant_crosses_json_flat_and_unchanged() -> None:
    (variant,) = parse_suite({"variant": [{
        "label": "moved", "protocol": "h3", "qpack_table": 0, "migrate_after_bytes": 1000,
        "migrate_to": "address", "zero_rtt": True, "tls_version": "1.3", "gzip_level": 9,
    }]}).variants
    document = variant.to_json()
    assert list(document) == ["label", "protocol", *knobs.KNOB_DEFAULTS]
    assert all(not isinstance(v, dict | list) for v in document.values())
    back = Variant.from_json(json.loads(json.dumps(document)))
    assert back == variant
    assert back.server_key() == variant.server_key()
    assert back.client_options() == variant.client_options()
    assert back.primes
    assert variant.primes
    with pytest.raises(ConfigError, match="qpack_table must be an integer"):
        Variant.from_json({**document, "qpack_table": -1})
