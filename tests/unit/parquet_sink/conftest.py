"""Shared inputs of the sink's unit tests: one simulated stack run, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from fluxforge_common.config import FluxForgeSettings

from tests.unit.parquet_sink.stack_data import StackData, embedded_dataset, simulated_lines, stack_messages


@pytest.fixture(scope="session")
def settings() -> FluxForgeSettings:
    return FluxForgeSettings()


@pytest.fixture(scope="session")
def stack(settings: FluxForgeSettings) -> StackData:
    """90 s of market in batches of at most 20 ticks, with refused and pretty-printed elements."""
    return stack_messages(simulated_lines(90), settings, batch_max=20, bad_every=97, pretty_every=301)


@pytest.fixture(scope="session")
def expected_root(
    stack: StackData, settings: FluxForgeSettings, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return embedded_dataset(stack.lines, settings, tmp_path_factory.mktemp("embedded"))
