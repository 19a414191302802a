"""Every number a link takes is validated once, at the edge (`build_profile`, the
constructors, `LinkProfile.from_json`), with the option, the value and the allowed range
in one line; and a profile that exists can be applied: the forwarder's select() and its
nanosecond clock never see a value that overflows them."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protolab.errors import ConfigError
from protolab.netem import state
from protolab.netem.config import (
    MAX_DELAY_NS,
    MAX_RATE_BPS,
    MIN_RATE_BPS,
    Direction,
    DirectionConfig,
    DropRule,
    LinkProfile,
)
from protolab.netem.link import EmulatedLink
from protolab.netem.model import DirectionModel, Verdict
from protolab.netem.profiles import PROFILES, Overrides, build_profile

TIMEOUT = 30.0
# select() converts its timeout to int64 nanoseconds: ~9.2e9 s overflow it.
SELECT_LIMIT_S = 9.2e9

# (overrides, what the one-line message must say); every parameter, every class of number.
BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"delay": "99999999999999999999ms"}, "--delay 1e+20 ms is out of range: allowed 0..60000 ms"),
    ({"delay": "61s"}, "--delay 61000 ms is out of range: allowed 0..60000 ms"),
    ({"delay": "9" * 400}, "--delay '999"),
    ({"delay": "-5ms"}, "must not be negative"),
    ({"delay": "nan"}, "--delay 'nan' is not a duration"),
    ({"delay": "inf"}, "--delay 'inf' is not a duration"),
    ({"delay": "1e3ms"}, "is not a duration"),
    ({"jitter": "-1ms", "delay": "5ms"}, "--jitter must not be negative"),
    ({"jitter": "nan", "delay": "5ms"}, "--jitter 'nan' is not a duration"),
    ({"jitter": "90s", "delay": "90s"}, "allowed 0..60000 ms"),
    ({"loss": "nan"}, "--loss 'nan' is not a percentage"),
    ({"loss": "inf%"}, "is not a percentage"),
    ({"loss": "-1%"}, "0..100%"),
    ({"loss": "100.5%"}, "0..100%"),
    ({"loss": "9" * 400}, "is too large a percentage"),
    ({"burst": "nan", "loss": "2%"}, "--burst 'nan' is not a number of packets"),
    ({"burst": "inf", "loss": "2%"}, "--burst 'inf' is not a number of packets"),
    ({"burst": "-4", "loss": "2%"}, "--burst -4 packets is out of range: allowed 1..1000000"),
    ({"burst": "0.5", "loss": "2%"}, "allowed 1..1000000 packets"),
    ({"burst": "1e9", "loss": "2%"}, "is not a number of packets"),
    ({"burst": "2000000", "loss": "2%"}, "--burst 2000000 packets is out of range"),
    ({"burst": "1_0", "loss": "2%"}, "is not a number of packets"),
    ({"rate": "nan"}, "--rate 'nan' is not a rate"),
    ({"rate": "0"}, "must be positive"),
    ({"rate": "-1mbit"}, "must be positive"),
    ({"rate": "1bit"}, "--rate 1 bit/s is out of range: allowed 1000..100000000000 bit/s"),
    ({"rate": "999999999999gbit"}, "--rate 1e+21 bit/s is out of range"),
    ({"rate": "9" * 400}, "is too large a rate"),
    ({"queue": "0", "rate": "10mbit"}, "at least 1"),
    ({"queue": "-3p", "rate": "10mbit"}, "at least 1"),
    ({"queue": "2000000p", "rate": "10mbit"}, "--queue 2000000 packets is out of range"),
    ({"queue": "2GiB", "rate": "10mbit"}, "--queue 2147483648 bytes is out of range"),
    ({"queue": "9" * 5000, "rate": "10mbit"}, "is out of range: allowed 1..1000000 packets"),
    ({"queue": "1.5p", "rate": "10mbit"}, "is not a queue size"),
    ({"drop": ("down:0",)}, "start at 1"),
    ({"drop": ("down:-3",)}, "start at 1"),
    ({"drop": ("down:2000000000",)}, "--drop packet number 2000000000 is out of range"),
    ({"drop": ("down:" + "9" * 5000,)}, "is out of range: allowed 1..1000000000"),
    ({"drop": ("down:1-2000000",)}, "lists more than 1000000 packets"),
    ({"drop": ("down:1-600000,700000-1300000",)}, "lists more than 1000000 packets"),
    ({"drop": ("down:1:tcp/0",)}, "never match"),
    ({"drop": ("down:1:tcp/70000",)}, "never match"),
    ({"drop": ("down:1:udp/-1",)}, "is not a number: allowed 1..65535"),
    ({"drop": ("down:1:udp/" + "9" * 5000,)}, "allowed 1..65535"),
    ({"seed": -1}, "--seed -1 is out of range: allowed 0..9223372036854775807"),
    ({"seed": 2**63}, "--seed 9223372036854775808 is out of range"),
    ({"seed": True}, "--seed must be an integer"),
    ({"delay": 50}, "--delay must be given as text"),
    ({"drop": "down:1"}, "--drop must be a tuple"),
    ({"reorder": "yes"}, "--reorder must be true or false"),
]


def _ids(case: tuple[dict[str, Any], str]) -> str:
    return ",".join(f"{k}={str(v)[:12]}" for k, v in case[0].items())


@pytest.mark.parametrize("case", BAD_VALUES, ids=[_ids(c) for c in BAD_VALUES])
def test_bad_link_parameters_are_one_line_config_errors(case: tuple[dict[str, Any], str]) -> None:
    overrides, message = case
    with pytest.raises(ConfigError) as info:
        build_profile("loopback", Overrides(**overrides))
    text = str(info.value)
    assert message in text
    assert "\n" not in text
    assert len(text) < 400  # a pasted novel is cut, not echoed


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"delay_ns": float("nan")}, "--delay must be an integer"),
        ({"delay_ns": MAX_DELAY_NS + 1}, "--delay 60000 ms is out of range"),
        ({"delay_ns": 10**400}, "a 1329-bit number"),
        ({"loss": float("nan")}, "--loss nan% is not a finite number: allowed 0..100%"),
        ({"loss": float("inf")}, "not a finite number"),
        ({"loss": 0.02, "burst": float("nan")}, "--burst nan packets is not a finite number"),
        ({"loss": 0.02, "burst": float("inf")}, "not a finite number"),
        ({"rate_bps": 10**30}, "--rate 1e+30 bit/s is out of range"),
        ({"rate_bps": 1.5e6}, "--rate must be an integer"),
        ({"rate_bps": 10**6, "queue_packets": 0}, "--queue 0 packets is out of range"),
        ({"rate_bps": 10**6, "queue_bytes": 2**40}, "--queue 1099511627776 bytes"),
        ({"reorder": 1}, "--reorder must be true or false"),
        ({"drops": [DropRule(Direction.UP, frozenset({1}))]}, "drop rules must be a tuple"),
    ],
)
def test_direction_config_refuses_what_the_forwarder_cannot_apply(
    fields: dict[str, Any], message: str,
) -> None:
    with pytest.raises(ConfigError) as info:
        DirectionConfig(**fields)
    assert message in str(info.value)


def test_drop_rule_and_profile_bounds() -> None:
    with pytest.raises(ConfigError, match="packet number 1000000001 is out of range"):
        DropRule(Direction.UP, frozenset({1_000_000_001}))
    with pytest.raises(ConfigError, match="must be an integer"):
        DropRule(Direction.UP, frozenset({1.5}))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--seed -1 is out of range"):
        LinkProfile(name="x", up=DirectionConfig(), down=DirectionConfig(), seed=-1)
    with pytest.raises(ConfigError, match="--mtu 70000 bytes is out of range"):
        LinkProfile(name="x", up=DirectionConfig(), down=DirectionConfig(), mtu=70000)


def test_the_largest_allowed_values_build_and_stay_schedulable() -> None:
    p = build_profile("loopback", Overrides(delay="60s", jitter="60s", rate="1kbit",
                                            queue="1000000p", loss="99%", burst="100",
                                            seed=2**63 - 1))
    assert p.up.delay_ns == MAX_DELAY_NS
    assert p.up.rate_bps == MIN_RATE_BPS
    _assert_schedulable(p)
    fast = build_profile("loopback", Overrides(rate="100gbit"))
    assert fast.up.rate_bps == MAX_RATE_BPS


def _assert_schedulable(profile: LinkProfile) -> None:
    """The model gives a finite deliver-at whose wait fits select() for a max-size packet."""
    now = 10**15
    for direction in Direction:
        model = DirectionModel(profile.direction(direction), direction, profile.seed)
        for i in range(3):
            decision = model.offer(bytes(profile.mtu), now + i)
            if decision.verdict is Verdict.DELIVER:
                wait_s = (decision.deliver_at_ns - now) / 1e9
                assert math.isfinite(wait_s)
                assert 0 <= wait_s < SELECT_LIMIT_S


OPTION_TEXT = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"-?[0-9]{0,25}(\.[0-9]{0,25})?(ns|us|ms|s|%|p|kb|KiB|mbit|gbit|bit)?",
                  fullmatch=True),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "none", "0", "1/2", "5ms/", "/5ms",
                     "10mbit/s", "∞", "٣", "1_000", "0x10", " 4 "]),
)
DROP_TEXT = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"(up|down|c2s|s2c|sideways):-?[0-9]{0,12}(-[0-9]{0,12})?(,[0-9]{1,6})?"
                  r"(:(tcp|udp|icmp|sctp)?(/-?[0-9]{0,7})?)?", fullmatch=True),
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(
    profile=st.sampled_from(sorted(PROFILES)),
    delay=st.none() | OPTION_TEXT, jitter=st.none() | OPTION_TEXT,
    loss=st.none() | OPTION_TEXT, burst=st.none() | OPTION_TEXT,
    rate=st.none() | OPTION_TEXT, queue=st.none() | OPTION_TEXT,
    drop=st.lists(DROP_TEXT, max_size=2).map(tuple), reorder=st.none() | st.booleans(),
    seed=st.none() | st.integers(min_value=-(2**70), max_value=2**70),
)
def test_fuzz_link_parameters_build_a_usable_profile_or_a_config_error(
    profile: str, delay: str | None, jitter: str | None, loss: str | None,
    burst: str | None, rate: str | None, queue: str | None, drop: tuple[str, ...],
    reorder: bool | None, seed: int | None,
) -> None:
    try:
        built = build_profile(profile, Overrides(
            delay=delay, jitter=jitter, loss=loss, burst=burst, rate=rate, queue=queue,
            drop=drop, reorder=reorder, seed=seed))
    except ConfigError as exc:
        message = str(exc)
    else:
        _assert_schedulable(built)
        assert LinkProfile.from_json(json.loads(json.dumps(built.to_json()))) == built
        return
    assert "\n" not in message


# -- the CLI: `protolab netem up|run|check` share these options with `protolab trace` --

CLI_CASES: list[tuple[str, list[str], str]] = [
    ("up", ["--delay", "99999999999999999999ms"], "--delay 1e+20 ms is out of range"),
    ("up", ["--burst", "nan", "--loss", "2%"], "--burst 'nan' is not a number of packets"),
    ("up", ["--loss", "nan"], "--loss 'nan' is not a percentage"),
    ("up", ["--jitter", "-1ms", "--delay", "5ms"], "--jitter must not be negative"),
    ("up", ["--rate", "1bit"], "--rate 1 bit/s is out of range"),
    ("up", ["--queue", "9" * 5000, "--rate", "1mbit"], "--queue '999"),
    ("up", ["--drop", "down:99999999999"], "--drop packet number 99999999999 is out of range"),
    ("up", ["--seed", "99999999999999999999999"], "--seed 1e+23 is out of range"),
    ("up", ["--seed", "-1"], "--seed -1 is out of range"),
    ("run", ["--delay", "inf", "--", "true"], "--delay 'inf' is not a duration"),
    ("check", ["--burst", "inf", "--loss", "1%"], "--burst 'inf' is not a number of packets"),
    ("check", ["--rate", "9" * 400], "is too large a rate"),
]


@pytest.mark.parametrize(("command", "args", "message"), CLI_CASES,
                         ids=[f"{c}:{a[1][:12]}" for c, a, _ in CLI_CASES])
def test_cli_refuses_bad_numbers_in_one_line_before_creating_anything(
    tmp_path: Path, command: str, args: list[str], message: str,
) -> None:
    links = tmp_path / "links"  # a record would be written here before anything is built
    result = subprocess.run(
        [sys.executable, "-m", "protolab", "netem", command, *args], capture_output=True,
        text=True, timeout=TIMEOUT, check=False,
        env={**os.environ, state.STATE_DIR_ENV: str(links)},
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert not links.exists(), "a link was started before its profile was validated"


# -- the profile as a JSON document (cells shipped to other processes and machines) -------

SAMPLE_OVERRIDES = [
    Overrides(),
    Overrides(delay="20ms/30ms", jitter="2ms", reorder=True, seed=7),
    Overrides(loss="3%", burst="2.5", rate="2mbit/10mbit", queue="64KiB"),
    Overrides(drop=("down:12,13:tcp", "up:1-3,7:udp/443", "down:1000-200000"), seed=0),
    Overrides(rate="none", loss="0.001%", seed=2**63 - 1),
]


@pytest.mark.parametrize("name", sorted(PROFILES))
@pytest.mark.parametrize("overrides", SAMPLE_OVERRIDES)
def test_every_bundled_profile_round_trips_through_json(name: str, overrides: Overrides) -> None:
    profile = build_profile(name, overrides)
    document = profile.to_json()
    text = json.dumps(document, allow_nan=False)  # JSON-safe: no NaN, no sets, no enums
    assert LinkProfile.from_json(json.loads(text)) == profile


def _valid_direction(direction: Direction) -> st.SearchStrategy[DirectionConfig]:
    @st.composite
    def build(draw: st.DrawFn) -> DirectionConfig:
        delay = draw(st.integers(0, MAX_DELAY_NS))
        loss = draw(st.floats(0.0, 0.5, allow_nan=False))
        burst = draw(st.none() | st.floats(1.0, 1e6)) if loss > 0 else None
        if burst is not None and loss / ((1 - loss) * burst) > 1:
            burst = None
        rate = draw(st.none() | st.integers(MIN_RATE_BPS, MAX_RATE_BPS))
        qp = draw(st.none() | st.integers(1, 10**6)) if rate else None
        qb = draw(st.none() | st.integers(65535, 2**30)) if rate else None
        rules = draw(st.lists(st.builds(
            DropRule, st.just(direction), st.frozensets(st.integers(1, 10**9), min_size=1,
                                                         max_size=20),
            st.sampled_from([None, "tcp", "udp"]), st.none() | st.integers(1, 65535)),
            max_size=3))
        return DirectionConfig(
            delay_ns=delay, jitter_ns=draw(st.integers(0, delay)), reorder=draw(st.booleans()),
            loss=loss, burst=burst, rate_bps=rate, queue_packets=qp, queue_bytes=qb,
            drops=tuple(rules))
    return build()


@FUZZ
@given(up=_valid_direction(Direction.UP), down=_valid_direction(Direction.DOWN),
       seed=st.integers(0, 2**63 - 1), mtu=st.integers(576, 65535),
       name=st.text(max_size=20), description=st.text(max_size=40))
def test_fuzz_valid_profiles_round_trip_exactly(
    up: DirectionConfig, down: DirectionConfig, seed: int, mtu: int, name: str,
    description: str,
) -> None:
    profile = LinkProfile(name=name, up=up, down=down, seed=seed, mtu=mtu,
                          description=description)
    assert LinkProfile.from_json(json.loads(json.dumps(profile.to_json()))) == profile


def _document() -> dict[str, Any]:
    return build_profile("bursty", Overrides(drop=("down:3,4:tcp/443",))).to_json()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("up", "delay_ns"), 1e30, "link profile.up.delay_ns must be an integer"),
        (("up", "delay_ns"), 10**20, "link profile.up.delay_ns 1e+20 is out of "
                                     "range: allowed 0..60000000000"),
        (("down", "loss"), "2%", "link profile.down.loss must be a number"),
        (("down", "loss"), 1.5, "link profile.down.loss 1.5 is out of range: allowed 0..1"),
        (("down", "burst"), -1, "link profile.down.burst -1 is out of range"),
        (("up", "rate_bps"), 0, "link profile.up.rate_bps 0 is out of range"),
        (("up", "queue_packets"), True, "link profile.up.queue_packets must be an integer"),
        (("up", "reorder"), "no", "link profile.up.reorder must be true or false"),
        (("seed",), -5, "link profile.seed -5 is out of range"),
        (("seed",), "1", "link profile.seed must be an integer"),
        (("mtu",), 100, "link profile.mtu 100 is out of range"),
        (("name",), 5, "link profile.name must be a string"),
        (("up",), [], "link profile.up must be a JSON object"),
        (("up", "colour"), "red", "link profile.up has unknown key(s) colour"),
        (("down", "drops", 0, "indices"), [[5, 3]], "link profile.down.drops[0].indices[0]"),
        (("down", "drops", 0, "indices"), [[0, 3]], "indices[0][0] 0 is out of range"),
        (("down", "drops", 0, "indices"), [7], "must be a [first, last] pair"),
        (("down", "drops", 0, "port"), 0, "link profile.down.drops[0].port 0 is out of range"),
        (("down", "drops", 0, "direction"), "up", "drop rule up:3,4:tcp/443 is stored under "
                                                  "the down direction"),
        (("down", "drops", 0, "protocol"), 6, "drops[0].protocol must be"),
        (("up", "jitter_ns"), 10**11, "link profile.up.jitter_ns 100000000000 is out of range"),
    ],
)
def test_bad_json_documents_are_config_errors_naming_the_key(
    path: tuple[Any, ...], value: Any, message: str,
) -> None:
    document = _document()
    node: Any = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ConfigError) as info:
        LinkProfile.from_json(document)
    assert message in str(info.value)


def test_missing_keys_and_cross_field_errors_say_where() -> None:
    document = _document()
    del document["up"]["loss"]
    with pytest.raises(ConfigError, match=r"link profile\.up lacks the key\(s\) loss"):
        LinkProfile.from_json(document)
    document = _document()
    document["up"]["jitter_ns"] = document["up"]["delay_ns"] + 1
    with pytest.raises(ConfigError, match=r"^link profile\.up: --jitter .* exceeds --delay"):
        LinkProfile.from_json(document)
    with pytest.raises(ConfigError, match="must be a JSON object, got list"):
        LinkProfile.from_json([])


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=6,
)


@FUZZ
@given(st.data())
def test_fuzz_damaged_documents_give_a_profile_or_a_config_error(data: st.DataObject) -> None:
    document = _document()
    for _ in range(data.draw(st.integers(1, 3))):
        node: Any = document
        while isinstance(node, dict | list) and node and data.draw(st.booleans()):
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            child = node[data.draw(st.sampled_from(keys))]
            if not isinstance(child, dict | list) or not child:
                break
            node = child
        if isinstance(node, dict) and node:
            node[data.draw(st.sampled_from(sorted(node)))] = data.draw(JSON_VALUES)
        elif isinstance(node, list) and node:
            node[data.draw(st.integers(0, len(node) - 1))] = data.draw(JSON_VALUES)
    try:
        profile = LinkProfile.from_json(document)
    except ConfigError as exc:
        message = str(exc)
    else:
        _assert_schedulable(profile)
        return
    assert "\n" not in message


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), 0, -1.0, 10**9])
def test_link_ready_timeout_is_bounded(timeout: float) -> None:
    with pytest.raises(ConfigError, match="ready_timeout_s .* is out of range"):
        EmulatedLink(build_profile("loopback"), ready_timeout_s=timeout)


@pytest.mark.parametrize("port", ["0", "70000", "-1"])
def test_netem_run_server_wait_port_is_bounded(port: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "protolab", "netem", "run", "--server-wait", port, "--", "true"],
        capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--server-wait" in result.stderr
