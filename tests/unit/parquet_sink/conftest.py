"""The settings of the sink's unit tests (the simulated stack run they share is `tests.support.stack_data`)."""

from __future__ import annotations

import pytest
from fluxforge_common.config import FluxForgeSettings


@pytest.fixture(scope="session")
def settings() -> FluxForgeSettings:
    return FluxForgeSettings()
