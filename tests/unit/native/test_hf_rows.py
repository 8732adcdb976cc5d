"""The engine's HF rows held as cells (`HfRows`): a sequence of the dicts they stand for, and the
same Parquet whether a writer takes the cells (`add_read`) or those dicts (`add`)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fluxforge_common.config import StateConfig
from fluxforge_common.features import EngineOutput, FeatureEngine, table_schema
from fluxforge_common.features.hf_columns import book_column_names, hf_columns, interval_column_names
from fluxforge_common.features.schema import hf_cell_kinds
from fluxforge_common.messages import DecodedTick, decode_tick
from fluxforge_common.simulator import MarketSimulator, SimulatorConfig
from fluxforge_common.storage.local import LocalStorage
from fluxforge_common.writers.parquet import PartitionedParquetWriter
from fluxforge_native import HfColumns, HfRows, IntervalFlows, Levels, RollingWindows

CFG = StateConfig()
BIDS = Levels.from_pairs([(100.0, 2.0), (99.5, 1.0)])
ASKS = Levels.from_pairs([(100.5, 1.0)])
DAY_MS = 86_400_000
T0 = 20_000 * DAY_MS


def _write(rows: HfRows, symbol: str, t: int, cfg: StateConfig = CFG, *, book: bool = True) -> None:
    flows, windows = IntervalFlows(cfg.ofi_levels), RollingWindows(1)
    windows.push(flows)
    bids, asks, mid = (BIDS, ASKS, 100.25) if book else (None, None, None)
    rows.write(hf_columns(cfg), "ex", symbol, t, bids, asks, None, flows, windows, mid, None, None)


def _engine_rows(lines: int) -> HfRows:
    """The HF rows of simulated ticks, a symbol's first tick a trade among them (its rows without a book)."""
    trade = (
        b'{"type":"trade","exchange":"ex0","symbol":"NEW/USDT","ts":1765497600500,"recv_ts":1765497600501,'
        b'"id":"t1","price":1.5,"amount":2.0,"side":"buy"}'
    )
    ticks = [trade, *itertools.islice(MarketSimulator(SimulatorConfig(seed=3)).ticks(), lines)]
    engine, out = FeatureEngine(CFG), EngineOutput()
    for line in ticks:
        item = decode_tick(line)
        assert isinstance(item, DecodedTick), item
        engine.process(item, out)
    engine.flush(out)
    return out.hf


def test_columns_refuse_a_layout_the_features_do_not_fill_exactly() -> None:
    kinds = hf_cell_kinds(CFG)
    names = book_column_names(CFG), interval_column_names(CFG)
    with pytest.raises(ValueError, match='the HF columns have no "mid"'):
        HfColumns([kind for kind in kinds if kind[0] != "mid"], *names, False)
    with pytest.raises(ValueError, match=r'no feature writes the HF columns \["extra"\]'):
        HfColumns([*kinds, ("extra", "f64")], *names, False)
    with pytest.raises(ValueError, match='column "bid_levels" is of kind f64, its values of kind i64'):
        HfColumns([(name, "f64" if name == "bid_levels" else kind) for name, kind in kinds], *names, False)


def test_rows_are_a_sequence_of_the_dicts_they_hold() -> None:
    rows = HfRows()
    _write(rows, "A/USD", T0 + 1_000)
    _write(rows, "B/USD", T0 + 1_000, book=False)
    _write(rows, "A/USD", T0 + 2_000)
    assert len(rows) == 3 and rows
    dicts = list(rows)
    assert [row["ts"] for row in dicts] == [T0 + 1_000, T0 + 1_000, T0 + 2_000]
    assert list(dicts[0]) == table_schema("hf", CFG).names  # keys in schema order
    assert (dicts[0]["mid"], dicts[0]["bid_levels"], dicts[0]["ask_px_2"]) == (100.25, 2, None)
    assert (dicts[1]["mid"], dicts[1]["bid_levels"], dicts[1]["last_book_ts"]) == (None, 0, None)
    assert rows[-1] == dicts[2] and rows[1:] == dicts[1:] and rows[::-2] == dicts[::-2]
    assert rows == dicts and dicts == rows and rows != dicts[:2] and rows != []
    for index in (3, -4, 2**70):
        with pytest.raises(IndexError):
            rows[index]
    rows.clear()
    assert len(rows) == 0 and rows == [] and not rows


def test_read_rows_are_tagged_by_partition_and_select_keeps_the_marked_ones() -> None:
    rows = HfRows()
    _write(rows, "A/USD", T0 - 1_000)  # the day before
    _write(rows, "A/USD", T0 + 1_000)
    _write(rows, "B/USD", T0 + 2_000)
    _write(rows, "A/USD", T0 + 3_000)
    read = rows.read_rows()
    assert read is not None and len(read) == 4
    assert read.partitions() == [
        ("ex", "A/USD", T0 - 1_000, 1),
        ("ex", "A/USD", T0 + 1_000, 2),
        ("ex", "B/USD", T0 + 2_000, 1),
    ]
    kept = read.select([False, True, False])
    assert len(kept) == 2 and kept.partitions() == [("ex", "A/USD", T0 + 1_000, 2)]
    assert (kept.min_ts, kept.max_ts) == (T0 + 1_000, T0 + 3_000)
    with pytest.raises(ValueError, match="2 flags for 3 partitions"):
        read.select([True, True])


def test_rows_of_many_symbols_interleaved_find_their_partitions() -> None:
    rows = HfRows()
    symbols = [f"S{n:04d}/USD" for n in range(1_500)]
    for second in range(3):
        for symbol in symbols:
            _write(rows, symbol, T0 + second * 1_000)
    read = rows.read_rows()
    assert read is not None
    assert read.partitions() == [("ex", symbol, T0, 3) for symbol in symbols]


def test_rows_of_another_config_wait_for_a_clear() -> None:
    rows = HfRows()
    _write(rows, "A/USD", T0)
    other = StateConfig(max_levels=3, ofi_levels=1)
    with pytest.raises(ValueError, match="HF rows of another config are held"):
        _write(rows, "A/USD", T0 + 1_000, other)
    assert len(rows) == 1
    rows.clear()
    _write(rows, "A/USD", T0 + 1_000, other)
    assert list(rows[0]) == table_schema("hf", StateConfig(max_levels=3, ofi_levels=1)).names


def test_raw_sides_come_only_as_dicts() -> None:
    cfg = StateConfig(keep_raw_arrays=True)
    rows = HfRows()
    flows, windows = IntervalFlows(cfg.ofi_levels), RollingWindows(1)
    windows.push(flows)
    columns = hf_columns(cfg)
    rows.write(columns, "ex", "A/USD", T0, BIDS, ASKS, None, flows, windows, 100.25, None, None)
    rows.write(columns, "ex", "A/USD", T0 + 1_000, None, None, None, flows, windows, None, None, None)
    assert rows.read_rows() is None
    assert (rows[0]["bids_raw"], rows[0]["asks_raw"]) == ([[100.0, 2.0], [99.5, 1.0]], [[100.5, 1.0]])
    assert (rows[1]["bids_raw"], rows[1]["asks_raw"]) == (None, None)
    assert list(rows[0]) == table_schema("hf", cfg).names


def test_a_writer_makes_the_same_files_of_the_cells_as_of_their_dicts(tmp_path: Path) -> None:
    rows = _engine_rows(6_000)
    assert any(row["mid"] is None for row in rows) and any(row["mid"] is not None for row in rows)
    read = rows.read_rows()
    assert read is not None
    tables = {}
    for how in ("cells", "dicts"):
        writer = PartitionedParquetWriter(LocalStorage(tmp_path / how), "hf", table_schema("hf", CFG))
        if how == "cells":
            assert writer.add_read(read) is not None
        else:
            writer.add(list(rows))
        files = writer.flush()
        tables[how] = {
            str(Path(file.path).parent): pq.read_table(tmp_path / how / file.path) for file in files
        }
    assert len(tables["cells"]) >= 5
    assert tables["cells"].keys() == tables["dicts"].keys()
    for path, table in tables["cells"].items():
        assert table.equals(tables["dicts"][path]), path
