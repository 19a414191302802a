"""The protocol registry is the one place that knows protocols by name."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from protolab import registry
from protolab.bench.suite import Variant
from protolab.core.record import Target
from protolab.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", registry.NAMES)
def test_every_knob_a_protocol_takes_is_an_option_of_its_client(name: str) -> None:
    spec = registry.get(name)
    options = registry._load(spec.options)
    fields = {f.name for f in dataclasses.fields(options)}
    assert set(spec.knobs) <= fields, f"{name}: knobs without a client option"
    client = spec.make_client(Target("127.0.0.1", 1),
                              **spec.client_options(registry.KNOB_DEFAULTS))
    assert client.name == name


def test_variant_defaults_are_the_registry_knob_defaults() -> None:
    assert Variant(label="x", protocol="h2").knobs() == dict(registry.KNOB_DEFAULTS)


@pytest.mark.parametrize("name", registry.NAMES)
def test_a_protocols_capabilities_and_its_knobs_say_the_same(name: str) -> None:
    # The runner reads sets_cc (a namespace's default cc) and primes reads early_data and
    # tls_resumption; validation refuses by `knobs`: the two must agree.
    spec = registry.get(name)
    caps = spec.capabilities
    assert caps.sets_cc == ("cc" in spec.knobs)
    assert caps.early_data == ("zero_rtt" in spec.knobs)
    assert caps.tls_resumption == ("resume" in spec.knobs)


def test_an_unknown_protocol_or_option_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="unknown protocol 'h9'"):
        registry.get("h9")
    with pytest.raises(ConfigError, match="unknown client option"):
        registry.make_client("h2", Target("127.0.0.1", 1), zero_rtt=True)


def test_schemes_imply_protocols_only_where_they_name_one() -> None:
    schemes = registry.scheme_protocols()
    assert schemes == {"https": None, "http": None, "wss": "ws", "ws": "ws",
                       "grpcs": "grpc", "grpc": "grpc"}
    assert registry.tls_schemes() == {"https", "wss", "grpcs"}
    assert registry.group_protocols("http", tls=True) == ("h1", "h2", "h3")
    assert registry.group_protocols("http", tls=False) == ("h1", "h2")


def _names_compared(tree: ast.AST) -> list[tuple[int, str]]:
    """Line and name of every comparison with, or dict keyed by, a protocol name."""
    names = set(registry.NAMES)
    found = []
    for node in ast.walk(tree):
        consts: list[ast.expr] = []
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                consts += side.elts if isinstance(side, ast.Tuple | ast.List | ast.Set) else [side]
        elif isinstance(node, ast.Dict):
            consts = [k for k in node.keys if k is not None]
        for const in consts:
            if isinstance(const, ast.Constant) and const.value in names:
                found.append((node.lineno, const.value))
    return found


def test_no_module_outside_the_registry_compares_protocol_names() -> None:
    offenders = []
    for path in sorted((ROOT / "protolab").rglob("*.py")):
        if path.name == "registry.py" or "proto" in path.parts:
            continue
        for line, name in _names_compared(ast.parse(path.read_text())):
            offenders.append(f"{path.relative_to(ROOT)}:{line} compares {name!r}")
    assert offenders == []
