"""Suite files: bundled ones load, user mistakes get a clear message before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from protolab.bench.suite import BUNDLED, expand, load_suite, parse_suite
from protolab.errors import ConfigError

MINIMAL = {"variant": [{"protocol": "h2"}]}


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_suites_load_and_say_what_to_expect(name: str) -> None:
    suite = load_suite(name)
    assert suite.description
    assert suite.expected
    assert expand(suite)


def test_sweeps_expand_to_one_cell_per_variant_and_point() -> None:
    suite = parse_suite({
        "variant": [{"protocol": "h2"}, {"protocol": "h3", "label": "quic"}],
        "link": {"overrides": {"rate": "10mbit"}, "sweep": {"loss": ["0%", "1%"],
                                                              "delay": ["5ms", "25ms"]},
                 "points": [{"drop": "down:40"}]},
    })
    cells = expand(suite)
    assert len(cells) == 2 * (2 * 2 + 1)
    assert cells[0].link_point == {"rate": "10mbit", "delay": "5ms", "loss": "0%"}
    assert cells[-1].link_point == {"rate": "10mbit", "drop": "down:40"}
    assert [c.variant.label for c in cells[:2]] == ["h2", "quic"]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"variant": [{"protocol": "h9"}]}, "unknown protocol 'h9'"),
        ({}, "at least one [[variant]]"),
        ({**MINIMAL, "repetitons": 3}, "unknown key(s) ['repetitons']"),
        ({**MINIMAL, "repetitions": 0}, "below the minimum"),
        ({**MINIMAL, "repetitions": "five"}, "wrong type"),
        ({**MINIMAL, "link": {"profile": "moon"}}, "unknown profile 'moon'"),
        ({**MINIMAL, "link": {"overrides": {"loss": "150%"}}}, "loss"),
        ({**MINIMAL, "link": {"overrides": {"delay": "-5ms"}}}, "must not be negative"),
        ({**MINIMAL, "link": {"sweep": {"loss": []}}}, "non-empty list"),
        ({**MINIMAL, "link": {"overrides": {"latency": "5ms"}}}, "unknown key(s) ['latency']"),
        ({**MINIMAL, "workload": {"paths": ["bytes/1"]}}, "starting with /"),
        ({**MINIMAL, "workload": {"count": -1}}, "below the minimum"),
        ({"variant": [{"protocol": "h2", "zero_rtt": True}]}, "needs a protocol with early data"),
        ({"variant": [{"protocol": "h3", "cc": "bbr"}]}, "h3: cc must be one of cubic, reno"),
        ({"variant": [{"protocol": "h3", "tls": False}]}, "h3 needs tls = true"),
        ({"variant": [{"protocol": "grpc", "cc": "reno"}]}, "cannot set this client's congestion"),
        ({"variant": [{"protocol": "h3", "resume": True}]}, "resume is for TCP+TLS"),
        ({"variant": [{"protocol": "h2"}, {"protocol": "h2"}]}, "unique"),
        ({"variant": [{"protocol": "h2", "tls_version": "1.1"}]}, "tls_version"),
    ],
)
def test_mistakes_are_named(data: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_suite(data, "my.toml")
    assert words in str(info.value)


def test_files_by_path_and_broken_toml(tmp_path: Path) -> None:
    good = tmp_path / "mine.toml"
    good.write_text('name = "mine"\n[[variant]]\nprotocol = "h1"\n')
    assert load_suite(str(good)).name == "mine"
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_suite(str(bad))
    with pytest.raises(ConfigError, match="no suite"):
        load_suite(str(tmp_path / "missing.toml"))
