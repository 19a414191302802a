"""Fixtures for tests that build real links: skip cleanly without privileges, leave nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from protolab.netem import namespaces, privileges
from protolab.netem.config import LinkProfile
from protolab.netem.link import EmulatedLink
from protolab.netem.profiles import Overrides, build_profile

LinkFactory = Callable[..., EmulatedLink]


def _why_not() -> str | None:
    problems = privileges.missing()
    return "; ".join(problems) if problems else None


@pytest.fixture(scope="session")
def netem_available() -> None:
    reason = _why_not()
    if reason:
        pytest.skip(f"emulated link unavailable ({reason}); {privileges.UNPRIVILEGED_HOWTO}")


# Namespaces of every link the tests built (other processes may run links meanwhile).
CREATED: set[str] = set()


@pytest.fixture(scope="session", autouse=True)
def no_link_left_behind() -> Iterator[None]:
    """After the whole session, none of the links the tests made may remain."""
    yield
    left = sorted(CREATED & set(namespaces.list_netns()))
    assert not left, f"namespaces left behind: {left}"


@pytest.fixture
def created_namespaces() -> set[str]:
    """Tests that build links in other processes register their namespaces here."""
    return CREATED


@pytest.fixture
def make_link(netem_available: None) -> Iterator[LinkFactory]:
    """`make_link(profile="loopback", **overrides)` starts a link closed at test end."""
    links: list[EmulatedLink] = []

    def factory(profile: str | LinkProfile = "loopback", *, name: str | None = None,
                pcap: str | None = None, offload: bool = True,
                **overrides: object) -> EmulatedLink:
        built = profile if isinstance(profile, LinkProfile) else build_profile(
            profile, Overrides(**overrides)  # type: ignore[arg-type]
        )
        link = EmulatedLink(built, name=name, pcap=pcap, offload=offload)
        links.append(link)
        CREATED.update((link.client_ns, link.server_ns))
        link.start()
        return link

    yield factory
    for link in links:
        link.close()
