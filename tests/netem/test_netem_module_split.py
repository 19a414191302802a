"""The link's modules after their split by job: old import paths still give the same
objects, and the pieces that moved between the forwarder and the link still agree.

No namespaces here: the control protocol runs over a socketpair, the command line
through the forwarder's own parser.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
from pathlib import Path
from typing import cast

import pytest

from protolab.errors import ConfigError, LabError
from protolab.netem import (
    config,
    counters,
    forwarder,
    link,
    option_values,
    profiles,
    timing,
    validation,
)


@pytest.mark.parametrize(("old", "new", "names"), [
    (forwarder, timing, ("DEFAULT_TIMING", "TimingSettings", "apply_timing", "READ_BATCH")),
    (forwarder, counters, ("COUNTER_NAMES", "LATE_SLOTS")),
    (link, counters, ("DirectionCounters", "LinkCounters")),
    (config, validation, ("BOUNDS", "Bound", "MAX_DELAY_NS", "MAX_DROP_PACKETS",
                          "MAX_RATE_BPS", "MIN_RATE_BPS")),
    (profiles, option_values, ("parse_drop", "parse_duration_ns", "parse_queue",
                               "split_updown")),
])
def test_names_that_moved_are_the_same_objects_where_they_were(
        old: object, new: object, names: tuple[str, ...]) -> None:
    for name in names:
        assert getattr(old, name) is getattr(new, name), name


def test_every_forwarder_counter_is_a_field_the_link_reports() -> None:
    snapshot = {
        "up": dict.fromkeys(counters.COUNTER_NAMES, 1),
        "down": {name: i for i, name in enumerate(counters.COUNTER_NAMES)},
        "in_flight": 3, "cpu_s": 0.5, "late_mean_ns": 7, "late_max_ns": 9,
        "late_hist": [0] * counters.LATE_SLOTS, "at_ns": 11, "epoch_ns": 5,
    }
    got = counters.LinkCounters.from_snapshot(snapshot, client_tun=(10, 20),
                                              server_tun=(30, 40))
    assert got.down.write_errors == counters.COUNTER_NAMES.index("write_errors")
    # Up packets leave the client's device (its tx) and enter the server's (its rx).
    assert (got.up.tun_tx_dropped, got.up.tun_rx_dropped) == (10, 40)
    assert (got.down.tun_tx_dropped, got.down.tun_rx_dropped) == (30, 20)
    assert (got.in_flight, got.at_ns, got.epoch_ns) == (3, 11, 5)
    assert len(got.late_hist) == counters.LATE_SLOTS


def test_the_command_line_the_link_builds_is_the_one_the_forwarder_reads(
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = timing.TimingSettings(realtime_priority=5, spin_ns=0)
    argv = forwarder.command_line(3, 4, 5, settings, Path("run.pcap"))
    assert argv[1:3] == ["-m", "protolab.netem.forwarder"]
    parsed: list[argparse.Namespace] = []

    def stop_after_parsing(parser: argparse.ArgumentParser,
                           args: list[str] | None = None) -> argparse.Namespace:
        parsed.append(original(parser, args))
        raise SystemExit(0)

    original = argparse.ArgumentParser.parse_args
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", stop_after_parsing)
    with pytest.raises(SystemExit):
        forwarder.main(argv[3:])
    (args,) = parsed
    assert (args.client_fd, args.server_fd, args.control_fd, args.pcap) == (3, 4, 5, "run.pcap")
    assert timing.TimingSettings.from_json(json.loads(args.timing)) == settings


def test_the_link_reads_the_ready_message_and_answers_over_the_control_socket() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs, ours.makefile("rb") as answers:
        theirs.sendall(b'{"ready": true, "timing": {"gc": "freeze"}}\n')
        assert forwarder.read_ready(answers, EXITED) == {"gc": "freeze"}
        theirs.sendall(b'{"in_flight": 0}\n')
        assert forwarder.request(ours, answers, "counters") == {"in_flight": 0}
        assert theirs.recv(64) == b"counters\n"
        theirs.shutdown(socket.SHUT_WR)  # it reads the command, then ends without answering
        with pytest.raises(LabError, match="has exited"):
            forwarder.request(ours, answers, "stop")
        theirs.close()
        with pytest.raises(LabError, match="unreachable"):
            forwarder.request(ours, answers, "counters")


def test_a_forwarder_that_never_says_ready_is_an_error_with_its_exit_status() -> None:
    ours, theirs = socket.socketpair()
    with ours, ours.makefile("rb") as answers:
        theirs.close()
        with pytest.raises(LabError, match="did not start") as caught:
            forwarder.read_ready(answers, EXITED)
    assert "exit status 1" in str(caught.value)


def test_the_address_family_is_parsed_as_before() -> None:
    assert profiles.build_profile("loopback", profiles.Overrides(ip=" 6 ")).ip == 6
    with pytest.raises(ConfigError, match="--ip '5' is not an address family"):
        profiles.build_profile("loopback", profiles.Overrides(ip="5"))


class _Exited:
    """Stands in for the forwarder's Popen: it exited with status 1."""

    def poll(self) -> int:
        return 1


EXITED = cast("subprocess.Popen[bytes]", _Exited())
