"""Sockets the lab cannot configure (grpcio opens its own) follow the link's TCP default.

The kernel's default here is BBR, which ignores loss; the lab compares protocols on
CUBIC. A link's namespaces are given the lab's default, so a gRPC call's sockets — on
both sides — run CUBIC like every other protocol's (DESIGN.md, fair comparisons).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from protolab import registry
from protolab.bench.runner import ClientJob, run_client
from protolab.bench.suite import Variant, Workload
from protolab.core.record import Target
from protolab.labserver import start_in_namespace
from protolab.netem.link import EmulatedLink
from protolab.netem.profiles import build_profile
from tests.netem.conftest import CREATED

TIMEOUT = 30.0


def _kernel_default() -> str:
    return Path("/proc/sys/net/ipv4/tcp_congestion_control").read_text().strip()


@pytest.mark.netem
def test_a_links_namespaces_default_to_the_asked_congestion_control(
        netem_available: None) -> None:
    before = _kernel_default()
    for asked in ("cubic", "reno"):
        with EmulatedLink(build_profile("loopback"), tcp_cc=asked) as link:
            CREATED.update((link.client_ns, link.server_ns))
            assert link.namespace_cc == {"client": asked, "server": asked}
    assert _kernel_default() == before  # the initial namespace is not touched


def _sysctl(name: str) -> list[str]:
    return Path(f"/proc/sys/net/ipv4/{name}").read_text().split()


@pytest.mark.netem
def test_an_algorithm_the_machine_restricts_is_still_the_links_default(
        netem_available: None) -> None:
    # Only the allowed list's algorithms can be a namespace's default (else EPERM); the
    # lab widens the list for the one write and puts it back.
    allowed = _sysctl("tcp_allowed_congestion_control")
    restricted = [a for a in _sysctl("tcp_available_congestion_control") if a not in allowed]
    if not restricted:
        pytest.skip("every available congestion control is allowed here: "
                    f"{' '.join(allowed)}; nothing is restricted to test with")
    with EmulatedLink(build_profile("loopback"), tcp_cc=restricted[0]) as link:
        CREATED.update((link.client_ns, link.server_ns))
        assert link.namespace_cc == {"client": restricted[0], "server": restricted[0]}
        assert _sysctl("tcp_allowed_congestion_control") == allowed


@pytest.mark.netem
@pytest.mark.skipif(shutil.which("ss") is None, reason="ss (iproute2) is missing")
@pytest.mark.parametrize("asked", ["cubic", "reno"])
def test_grpc_sockets_follow_the_namespace_default_not_the_kernels(
        netem_available: None, tmp_path: Path, asked: str) -> None:
    variant = Variant(label="grpc", protocol="grpc")
    with EmulatedLink(build_profile("loopback"), tcp_cc=asked) as link:
        CREATED.update((link.client_ns, link.server_ns))
        config = registry.server_config("grpc", variant.knobs(), link.server_addr,
                                        tmp_path / "certs")
        with start_in_namespace(link, config) as server:
            target = Target(host=link.server_addr, port=server.port("grpc"), tls=True,
                            ca_file=server.ca_file)
            # A slow call keeps the connection open while ss looks at the server's side.
            job = ClientJob(variant, Workload(paths=("/ServerStream?count=40&size=100"
                                                     "&interval_ms=50",)), TIMEOUT)
            thread = link.start_thread("client", run_client, job, target)
            seen = ""
            for _ in range(100):  # bounded: until the call's connection shows up
                seen = link.run("server", ["ss", "-tin", "state", "established"],
                                capture_output=True, text=True, timeout=TIMEOUT,
                                check=True).stdout
                if str(server.port("grpc")) in seen and (asked in seen or "bbr" in seen):
                    break
                time.sleep(0.05)  # poll interval of a bounded loop
            thread.join(TIMEOUT)
    assert asked in seen, seen
    assert "bbr" not in seen, seen  # the kernel's default, which the namespace replaced


@pytest.mark.netem
def test_each_cell_records_whether_its_namespaces_had_the_asked_default(
        netem_available: None, tmp_path: Path) -> None:
    from protolab.bench.session import run_bench
    from protolab.bench.suite import parse_suite
    from protolab.store import ResultsStore

    suite = parse_suite({"variant": [{"protocol": "grpc"}], "repetitions": 1, "warmup": 0,
                         "workload": {"paths": ["/Unary?size=100"]}})
    with ResultsStore(tmp_path / "lab.db") as store:
        result = run_bench(suite, store, tmp_path / "out")
        (cell,) = store.cells(result.run_id)
        metrics = {m.name: m.value for m in store.metrics(cell.id)}
    assert cell.status == "ok"
    assert metrics["namespace_cc_mismatch"] == 0
