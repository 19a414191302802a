"""The forwarder's timing settings: asked, granted or refused, and recorded.

A setting the OS refuses (SCHED_FIFO in a user namespace, a CPU this machine lacks) must
leave a working link and one log line; what was asked goes into every run's manifest and
what was granted is the link's `timing`. No timed assertion here: the machine is shared.
"""

from __future__ import annotations

import logging
import shutil
import sys

import pytest

from protolab.netem import measure
from protolab.netem import timing as timing_module
from protolab.netem.forwarder import DEFAULT_TIMING, TimingSettings
from protolab.netem.link import EmulatedLink, LinkCounters
from protolab.netem.profiles import Overrides, build_profile
from protolab.store.manifest import manifest
from tests.netem.conftest import CREATED
from tests.netem.test_netem_lifecycle import _in_user_namespace

ABSENT_CPU = 4095  # beyond any machine these tests run on (the kernel's NR_CPUS limit)


def _echoes(link: EmulatedLink) -> int:
    return measure.udp_echo(link, count=5, interval_s=0.01, wait_s=5.0).received


@pytest.mark.netem
def test_a_refused_setting_leaves_a_working_link_and_one_log_line(
        netem_available: None, caplog: pytest.LogCaptureFixture) -> None:
    timing = TimingSettings(cpu=ABSENT_CPU, gc="freeze")
    link = EmulatedLink(build_profile("loopback", Overrides(delay="2ms")), timing=timing)
    CREATED.update((link.client_ns, link.server_ns))
    with caplog.at_level(logging.WARNING, logger="protolab.netem.link"), link:
        assert _echoes(link) == 5
        granted = link.timing
    lines = [r.getMessage() for r in caplog.records if r.name == "protolab.netem.link"]
    assert len(lines) == 1, lines
    assert f"CPU affinity {ABSENT_CPU} refused" in lines[0]
    assert granted["cpu"] is None  # refused: the forwarder runs wherever the kernel likes
    assert granted["gc"] == "freeze"  # what was granted is still reported
    # Whether holding idle CPUs out of halt can work here is said, as the machine says it.
    assert granted["cpuidle_driver"] == timing_module.cpuidle_driver()
    assert granted["refused"] == [lines[0].split("forwarder timing: ", 1)[1]]


@pytest.mark.netem
def test_the_default_settings_are_granted_as_root_and_described(
        netem_available: None, caplog: pytest.LogCaptureFixture) -> None:
    link = EmulatedLink(build_profile("loopback", Overrides()))
    CREATED.update((link.client_ns, link.server_ns))
    with caplog.at_level(logging.WARNING, logger="protolab.netem.link"), link:
        assert _echoes(link) == 5
        granted = link.timing
        counters = link.counters()
    assert link.timing_asked == DEFAULT_TIMING
    assert granted["spin_us"] == DEFAULT_TIMING.spin_ns // 1000
    assert granted["spin_share"] == DEFAULT_TIMING.spin_share
    assert granted["gc"] == DEFAULT_TIMING.gc
    assert granted["timer_slack_ns"] == 1
    assert granted["cpu_latency_us"] == DEFAULT_TIMING.cpu_latency_us
    if DEFAULT_TIMING.realtime_priority:
        assert granted["scheduler"] == f"fifo:{DEFAULT_TIMING.realtime_priority}"
    assert granted["refused"] == []
    assert not [r for r in caplog.records if r.name == "protolab.netem.link"]
    # Zero delay: every packet takes the fast path, none is scheduled, none late.
    assert sum(counters.late_hist) == 0


def test_every_run_manifest_records_the_link_timing() -> None:
    recorded = manifest({"suite": "x"})["link_timing"]
    assert recorded == DEFAULT_TIMING.to_json()
    assert TimingSettings.from_json(recorded) == DEFAULT_TIMING


@pytest.mark.netem
@pytest.mark.skipif(shutil.which("unshare") is None, reason="util-linux unshare is missing")
@pytest.mark.skipif(not DEFAULT_TIMING.realtime_priority,
                    reason="the default timing asks for no real-time scheduling")
def test_sched_fifo_refused_in_a_user_namespace_is_one_line_not_a_failure(
        netem_available: None) -> None:
    # Inside a user namespace CAP_SYS_NICE does not count: SCHED_FIFO is EPERM there.
    result = _in_user_namespace(["netem", "run", "--delay", "5ms", "--", sys.executable, "-c",
                                 "import socket; s = socket.socket(); s.settimeout(5); "
                                 "print(s.connect_ex(('10.77.0.2', 9)))"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "111"  # the SYN crossed the link
    refusals = [line for line in result.stderr.splitlines() if "SCHED_FIFO" in line]
    assert len(refusals) == 1, result.stderr
    assert "refused" in refusals[0]
    assert "normal scheduling" in refusals[0]


@pytest.mark.parametrize("bad", [
    {"realtime_priority": 100}, {"gc": "sometimes"}, {"spin_ns": -1}, {"read_batch": 0},
    {"spin_share": 1.5}, {"cpu_latency_us": -1},
])
def test_timing_settings_refuse_values_out_of_range(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="|".join(bad)):
        TimingSettings(**bad)  # type: ignore[arg-type]


def test_lateness_percentile_reads_the_histogram_slots() -> None:
    counters = LinkCounters(up=None, down=None, in_flight=0,  # type: ignore[arg-type]
                            forwarder_cpu_s=0.0, late_mean_ns=0, late_max_ns=0, at_ns=0,
                            late_hist=(90, 0, 0, 9, 0, 1))
    assert counters.lateness.percentile_us(50) == 1.0  # slot 0: under 1 us
    assert counters.lateness.percentile_us(99) == 8.0  # slot 3: 4..8 us
    assert counters.lateness.percentile_us(100) == 32.0
