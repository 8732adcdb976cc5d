"""Provenance in every Parquet file of the embedded run and reprocess; `validate` and the reader find a
partition whose files were computed under two feature configurations."""

from __future__ import annotations

import warnings
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from fluxforge_common.config import FluxForgeSettings, StateConfig
from fluxforge_common.dataset.provenance import SCHEMA_VERSION, Provenance, fluxforge_version, read_provenance
from fluxforge_common.dataset.reader import DatasetWarning, read_table
from fluxforge_common.dataset.validation import validate_dataset
from fluxforge_common.features.symbol_state import config_fingerprint
from fluxforge_common.pipeline import EmbeddedPipeline, reprocess, simulator_lines
from fluxforge_common.simulator import SimulatorConfig
from fluxforge_common.storage import LocalStorage

SIMULATOR = SimulatorConfig(seed=3, exchanges={"kraken": ["BTC/USD", "ETH/USD"]})
OTHER = StateConfig(horizons=(1, 5, 30), bar_durations=(1, 5))


def run(root: Path, features: StateConfig, seconds: float = 20) -> None:
    settings = FluxForgeSettings(simulator=SIMULATOR, features=features)
    source = {"mode": "embedded", "input": "simulator(seed=3)"}
    EmbeddedPipeline(settings, LocalStorage(root), source=source).run(
        simulator_lines(SIMULATOR), "sim", duration_s=seconds
    )


def origins(root: Path) -> dict[str, Provenance | None]:
    return {
        path.relative_to(root).as_posix(): read_provenance(pq.read_schema(path).metadata)
        for path in sorted(root.glob("*/**/*.parquet"))
    }


def test_embedded_and_reprocess_files_carry_version_config_source_and_schema_version(tmp_path: Path) -> None:
    run(tmp_path / "run", StateConfig())
    reprocess(FluxForgeSettings(features=OTHER), tmp_path / "run", tmp_path / "again", ["2025-12-12"])
    for root, cfg, source in (
        ("run", StateConfig(), {"mode": "embedded", "input": "simulator(seed=3)"}),
        (
            "again",
            OTHER,
            {"mode": "reprocess", "input": str(tmp_path / "run"), "dates": ["2025-12-12"]},
        ),
    ):
        found = origins(tmp_path / root)
        assert {path.split("/", 1)[0] for path in found} == {"hf", "bars", "trades", "ticker"}
        for origin in found.values():
            assert origin is not None
            assert (origin.version, origin.schema_version) == (fluxforge_version(), SCHEMA_VERSION)
            assert origin.config_fingerprint == config_fingerprint(cfg)
            assert StateConfig.model_validate_json(origin.features) == cfg
            assert orjson.loads(origin.source) == source


def test_a_partition_mixing_two_configurations_is_flagged_and_read_with_a_warning(tmp_path: Path) -> None:
    root = tmp_path / "data"
    run(root, StateConfig(), seconds=10)
    assert validate_dataset(root) == []
    with_one = read_table(root, "hf", symbol="BTC/USD")
    mixed = tmp_path / "later"
    run(mixed, OTHER, seconds=20)
    for path in mixed.glob("hf/**/*.parquet"):  # a second run under other parameters into the same root
        target = root / path.relative_to(mixed)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    problems = [p for p in validate_dataset(root) if "feature configurations" in p.message]
    assert sorted(p.path for p in problems) == [
        "hf/exchange=kraken/symbol=BTC%2FUSD/date=2025-12-12",
        "hf/exchange=kraken/symbol=ETH%2FUSD/date=2025-12-12",
    ]
    assert all(p.severity == "error" for p in problems)
    assert "bar_durations: [1, 5, 30, 60] -> [1, 5]" in problems[0].message
    assert "horizons: [1, 5, 30, 60] -> [1, 5, 30]" in problems[0].message
    with pytest.warns(DatasetWarning, match="2 feature configurations"):
        assert read_table(root, "hf", symbol="BTC/USD").num_rows > with_one.num_rows
    with warnings.catch_warnings():
        warnings.simplefilter("error", DatasetWarning)  # bars were not mixed: no warning
        assert read_table(root, "bars", symbol="BTC/USD").num_rows > 0
