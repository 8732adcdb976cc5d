"""A small simulated dataset that crosses midnight, written by the embedded pipeline, shared per module."""

from __future__ import annotations

from pathlib import Path

import pytest
from fluxforge_common.config import FluxForgeSettings
from fluxforge_common.pipeline import EmbeddedPipeline, simulator_lines
from fluxforge_common.simulator import SimulatorConfig
from fluxforge_common.storage import LocalStorage

MIDNIGHT = 1_765_584_000_000  # 2025-12-13T00:00:00Z
SIMULATOR = SimulatorConfig(seed=5, start_ms=MIDNIGHT - 40_000, mean_events_per_second_per_symbol=10.0)
DURATION_S = 80


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 exchanges, 5 symbols, 2 dates; several files per partition (small flush size)."""
    root = tmp_path_factory.mktemp("api")
    settings = FluxForgeSettings(simulator=SIMULATOR, parquet={"flush_rows": 300})
    summary = EmbeddedPipeline(settings, LocalStorage(root)).run(
        simulator_lines(SIMULATOR), "sim", duration_s=DURATION_S
    )
    assert summary.rejected == 0 and all(summary.rows[t] for t in ("hf", "bars", "trades", "ticker"))
    return root
