"""Profiles, overrides and bad input: every mistake is a ConfigError before anything exists."""

from __future__ import annotations

import pytest

from protolab.errors import ConfigError
from protolab.netem.config import Direction, DirectionConfig, DropRule, LinkProfile
from protolab.netem.profiles import (
    DEFAULT_QUEUE_PACKETS,
    PROFILES,
    Overrides,
    build_profile,
    describe,
)

MS = 1_000_000


def test_required_profiles_exist_and_describe() -> None:
    for name in ("loopback", "lan", "wifi", "4g", "3g", "satellite", "lossy", "bursty"):
        profile = build_profile(name)
        assert profile.name == name
        assert len(describe(profile)) == 7
    assert not PROFILES["loopback"].up.impaired
    assert PROFILES["lossy"].down.loss == 0.02
    assert PROFILES["bursty"].up.burst == 4.0


def test_overrides_apply_to_both_directions_or_up_down() -> None:
    p = build_profile("loopback", Overrides(delay="20ms/30ms", rate="2mbit/10Mbit/s", loss="1%"))
    assert (p.up.delay_ns, p.down.delay_ns) == (20 * MS, 30 * MS)
    assert (p.up.rate_bps, p.down.rate_bps) == (2_000_000, 10_000_000)
    assert p.up.queue_packets == DEFAULT_QUEUE_PACKETS
    assert p.up.loss == p.down.loss == 0.01
    assert p.base_rtt_ns == 50 * MS
    assert p.name == "loopback+custom"


def test_override_units() -> None:
    p = build_profile(
        "lan",
        Overrides(delay="500us", jitter="0.1ms", queue="64kb", burst="3", loss="2",
                  drop=("down:12,13", "up:1-3:udp/443"), seed=9, reorder=True),
    )
    assert p.up.delay_ns == 500_000
    assert p.up.jitter_ns == 100_000
    assert (p.up.queue_packets, p.up.queue_bytes) == (None, 64_000)
    assert p.up.burst == 3.0
    assert p.down.drops == (DropRule(Direction.DOWN, frozenset({12, 13})),)
    assert p.up.drops == (DropRule(Direction.UP, frozenset({1, 2, 3}), "udp", 443),)
    assert p.seed == 9
    assert p.down.reorder


def test_rate_none_removes_the_queue() -> None:
    p = build_profile("lan", Overrides(rate="none"))
    assert p.up.rate_bps is None
    assert p.up.queue_packets is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (Overrides(delay="-5ms"), "negative"),
        (Overrides(loss="120%"), "0..100%"),
        (Overrides(loss="x"), "not a percentage"),
        (Overrides(delay="fast"), "not a duration"),
        (Overrides(rate="0"), "positive"),
        (Overrides(rate="10parsecs"), "not a rate"),
        (Overrides(queue="25p"), "--queue needs --rate"),
        (Overrides(queue="0", rate="10mbit"), "at least 1"),
        (Overrides(queue="100b", rate="10mbit"), "cannot hold one"),
        (Overrides(jitter="5ms"), "exceeds --delay"),
        (Overrides(burst="3"), "--burst needs --loss"),
        (Overrides(burst="0.5", loss="1%"), r"allowed 1\.\.1000000 packets"),
        (Overrides(burst="1", loss="60%"), "cannot be reached"),
        (Overrides(drop=("down:0",)), "start at 1"),
        (Overrides(drop=("sideways:1",)), "DIRECTION"),
        (Overrides(drop=("down:1:icmp/80",)), "never match"),
        (Overrides(drop=("down:1:tcp/0",)), "never match"),
        (Overrides(drop=("down:1:sctp",)), "unknown"),
        (Overrides(drop=("down:5-3",)), "empty"),
        (Overrides(delay="1/2/3"), "UP/DOWN"),
    ],
)
def test_bad_overrides_are_config_errors(overrides: Overrides, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_profile("loopback", overrides)


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown link profile") as info:
        build_profile("5g")
    assert info.value.hint is not None
    assert "satellite" in info.value.hint


def test_drop_rule_in_wrong_direction_is_rejected() -> None:
    wrong = DirectionConfig(drops=(DropRule(Direction.DOWN, frozenset({1})),))
    with pytest.raises(ConfigError, match="stored under the up"):
        LinkProfile(name="x", up=wrong, down=DirectionConfig())
