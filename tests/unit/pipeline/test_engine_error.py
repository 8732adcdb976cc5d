"""An engine defect on one symbol's tick costs that tick, not the run: it is dead-lettered with the
error, the other symbols' rows are written, and the archive keeps every tick read."""

from __future__ import annotations

import itertools
from pathlib import Path

import orjson
from fluxforge_common.config.settings import FluxForgeSettings
from fluxforge_common.dataset import read_table
from fluxforge_common.features import FeatureEngine
from fluxforge_common.pipeline import EmbeddedPipeline, archive_lines, simulator_lines
from fluxforge_common.storage import LocalStorage

from tests.support.engine_faults import TickLaneFault, failing

BROKEN = ("binanceus", "ETH/USDT")


def test_an_engine_error_dead_letters_the_tick_and_the_run_goes_on(tmp_path: Path) -> None:
    settings = FluxForgeSettings(simulator={"seed": 3})
    lines = list(itertools.islice(simulator_lines(settings.simulator), 3_000))
    storage = LocalStorage(tmp_path)
    pipeline = EmbeddedPipeline(settings, storage)
    pipeline.engine = failing(
        pipeline.engine,
        lambda state, _: (state.exchange, state.symbol) == BROKEN,
        OverflowError("intermediate overflow in fsum"),
    )
    summary = pipeline.run(lines, "test")

    broken = [line for line in lines if b'"exchange":"binanceus","symbol":"ETH/USDT"' in line]
    assert broken and summary.lines == len(lines)
    assert summary.rejected == len(broken) and summary.reasons == {"engine error": len(broken)}
    assert len(list(archive_lines(storage))) == len(lines)
    hf = read_table(tmp_path, "hf")
    symbols = set(zip(hf["exchange"].to_pylist(), hf["symbol"].to_pylist(), strict=True))
    assert BROKEN not in symbols and len(symbols) > 3
    (dead,) = storage.list_files("deadletter")
    reasons = {orjson.loads(line)["reason"] for line in storage.read_bytes(dead).splitlines()}
    assert reasons == {"engine error: OverflowError: intermediate overflow in fsum"}


def test_an_error_raised_inside_the_native_path_dead_letters_that_line_and_the_run_goes_on(
    tmp_path: Path,
) -> None:
    settings = FluxForgeSettings(simulator={"seed": 3})
    lines = list(itertools.islice(simulator_lines(settings.simulator), 3_000))
    storage = LocalStorage(tmp_path)
    pipeline = EmbeddedPipeline(settings, storage)
    assert isinstance(pipeline.engine, FeatureEngine)
    pipeline.engine = TickLaneFault(pipeline.engine, *BROKEN, OverflowError("intermediate overflow in fsum"))
    summary = pipeline.run(lines, "test")

    broken = [line for line in lines if b'"exchange":"binanceus","symbol":"ETH/USDT"' in line]
    assert broken and summary.lines == len(lines)
    # Only the symbol's lines that closed an interval raise; its other lines are taken.
    assert 0 < summary.rejected < len(broken) and summary.reasons == {"engine error": summary.rejected}
    assert summary.per_symbol["binanceus:ETH/USDT"] == len(broken) - summary.rejected
    assert len(list(archive_lines(storage))) == len(lines)
    hf = read_table(tmp_path, "hf")
    assert len(set(zip(hf["exchange"].to_pylist(), hf["symbol"].to_pylist(), strict=True))) > 3
    (dead,) = storage.list_files("deadletter")
    dead_letters = [orjson.loads(line) for line in storage.read_bytes(dead).splitlines()]
    assert {record["reason"] for record in dead_letters} == {
        "engine error: OverflowError: intermediate overflow in fsum"
    }
    assert {record["raw"].encode() for record in dead_letters} <= set(broken)
