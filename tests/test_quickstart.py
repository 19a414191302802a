"""The README's quick start: `./run` asks apt only for packages whose tool is missing.

A machine whose Node.js came from a vendor package that bundles npm must not be asked to
install Debian's npm (it conflicts: "held broken packages"), and the demo needs none of the
test peers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import TIMEOUT

ROOT = Path(__file__).resolve().parents[1]
BASH = shutil.which("bash")
TEST_PEERS = {"curl", "nghttp2-client", "caddy", "ngtcp2-client", "tshark", "nodejs", "npm",
              "chromium"}


def requested(job: str, path: str | None = None) -> list[str]:
    assert BASH is not None
    env = {**os.environ, "PATH": path} if path is not None else None
    result = subprocess.run([BASH, str(ROOT / "run"), "packages", job], capture_output=True,
                            text=True, timeout=TIMEOUT, check=True, env=env)
    return result.stdout.split()


def fake_path(tmp_path: Path, tools: dict[str, str | None]) -> str:
    """A PATH holding only `tools`: each a link to the real binary, or (None) a stub."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, real in tools.items():
        if real is None:
            stub = bin_dir / name
            stub.write_text("#!/bin/sh\nexit 0\n")
            stub.chmod(0o755)
        else:
            (bin_dir / name).symlink_to(real)
    return str(bin_dir)


def essentials() -> dict[str, str | None]:
    found = {name: shutil.which(name) for name in ("bash", "dirname", "python3")}
    missing = [name for name, where in found.items() if where is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not on PATH")
    return dict(found)


def test_a_tool_from_elsewhere_is_never_requested_from_apt(tmp_path: Path) -> None:
    # node and npm present (as a vendor Node.js ships them), everything else missing.
    path = fake_path(tmp_path, {**essentials(), "node": None, "npm": None})
    packages = requested("test", path)
    assert "nodejs" not in packages
    assert "npm" not in packages
    assert {"curl", "tshark", "caddy", "iproute2"} <= set(packages)


def test_npm_alone_is_requested_when_only_node_is_there(tmp_path: Path) -> None:
    path = fake_path(tmp_path, {**essentials(), "node": None})
    packages = requested("test", path)
    assert "npm" in packages
    assert "nodejs" not in packages


def test_the_demo_needs_no_test_peer(tmp_path: Path) -> None:
    path = fake_path(tmp_path, essentials())
    packages = requested("demo", path)
    assert "iproute2" in packages
    assert not TEST_PEERS & set(packages)


@pytest.mark.parametrize("job", ["demo", "test"])
def test_what_run_would_request_resolves_with_apt(job: str) -> None:
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        pytest.skip("apt-get is not installed: not a Debian machine")
    packages = requested(job)
    if not packages:
        return  # nothing missing: ./run asks apt for nothing, which cannot conflict
    result = subprocess.run(
        [apt_get, "install", "-s", "-qq", "--no-install-recommends", *packages],
        capture_output=True, text=True, timeout=TIMEOUT * 6, check=False,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    assert result.returncode == 0, f"apt-get install -s {' '.join(packages)}: {result.stderr}"


def test_what_a_pristine_machine_with_a_vendor_node_would_request_resolves(
        tmp_path: Path) -> None:
    # The machine this project runs on: nodesource's nodejs (npm inside) and nothing else.
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        pytest.skip("apt-get is not installed: not a Debian machine")
    tools = {**essentials(), "node": shutil.which("node"), "npm": shutil.which("npm")}
    if tools["node"] is None or tools["npm"] is None:
        pytest.skip("no node and npm on this machine to stand for a vendor Node.js")
    packages = requested("test", fake_path(tmp_path, tools))
    result = subprocess.run(
        [apt_get, "install", "-s", "-qq", "--no-install-recommends", *packages],
        capture_output=True, text=True, timeout=TIMEOUT * 6, check=False,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    assert result.returncode == 0, f"apt-get install -s {' '.join(packages)}: {result.stderr}"
