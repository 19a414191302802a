"""HOL tests that bring up the emulated link skip, with the reason, where it cannot exist."""

from __future__ import annotations

import pytest

from protolab.netem.privileges import missing


@pytest.fixture
def needs_link() -> None:
    lacking = missing()
    if lacking:
        pytest.skip(f"the emulated link cannot be built here: {'; '.join(lacking)}")
