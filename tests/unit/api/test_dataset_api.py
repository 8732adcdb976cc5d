"""`fluxforge.open(...)`: exactly the rows and columns of the files for filters on every key, partition
pruning (files opened are counted), the three output kinds, and `fluxforge query` on top of it."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from fluxforge_common.dataset.reader import DatasetWarning
from fluxforge_common.pipeline import archive_lines
from fluxforge_common.storage import LocalStorage

import fluxforge
from tests.support.filesystems import counting_filesystem
from tests.unit.api.conftest import MIDNIGHT

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
Filters = dict[str, Any]


def ms(value: dt.datetime) -> int:
    return (value - EPOCH) // dt.timedelta(milliseconds=1)


def table_files(root: Path, table: str) -> list[Path]:
    """The table's data files in partition, then name, order - read directly, without the reader."""
    files = [p for p in (root / table).rglob("*.parquet") if not p.name.startswith((".", "_"))]
    return sorted(files, key=lambda p: p.relative_to(root).parts)


def expected_rows(root: Path, table: str, filters: Filters) -> list[dict[str, Any]]:
    """The rows the filters mean, decided in plain Python over every file of the table."""
    rows = [row for path in table_files(root, table) for row in pq.read_table(path).to_pylist()]
    start, end = filters.get("start_ms"), filters.get("end_ms")
    symbols = filters.get("symbol")
    wanted_symbols = {symbols} if isinstance(symbols, str) else set(symbols or ())
    kept = [
        row
        for row in rows
        if filters.get("exchange") in (None, row["exchange"])
        and (not wanted_symbols or row["symbol"] in wanted_symbols)
        and (start is None or ms(row["ts"]) >= start)
        and (end is None or ms(row["ts"]) < end)
        and filters.get("duration_s") in (None, row.get("duration_s"))
    ]
    columns = filters.get("columns")
    return [{c: row[c] for c in columns} for row in kept] if columns else kept


CASES: list[tuple[str, Filters, Filters]] = [
    # (table, API arguments, the same selection in plain values for the reference)
    ("hf", {}, {}),
    ("hf", {"exchange": "kraken"}, {"exchange": "kraken"}),
    ("hf", {"symbol": "BTC/USDT"}, {"symbol": "BTC/USDT"}),
    ("hf", {"symbol": ["ETH/USD", "SOL/USDT"]}, {"symbol": ["ETH/USD", "SOL/USDT"]}),
    (
        "hf",
        {
            "exchange": "binanceus",
            "symbol": "ETH/USDT",
            "start": "2025-12-12T23:59:50",
            "end": "2025-12-13T00:00:10Z",
        },
        {
            "exchange": "binanceus",
            "symbol": "ETH/USDT",
            "start_ms": MIDNIGHT - 10_000,
            "end_ms": MIDNIGHT + 10_000,
        },
    ),
    ("hf", {"start": MIDNIGHT + 1}, {"start_ms": MIDNIGHT + 1}),
    ("hf", {"end": dt.date(2025, 12, 13)}, {"end_ms": MIDNIGHT}),
    (
        "hf",
        {"start": dt.datetime(2025, 12, 12, 23, 59, 55), "columns": ["ts", "symbol", "mid", "ofi_l1"]},
        {"start_ms": MIDNIGHT - 5000, "columns": ["ts", "symbol", "mid", "ofi_l1"]},
    ),
    ("bars", {"duration": "5s"}, {"duration_s": 5}),
    (
        "bars",
        {"duration": dt.timedelta(seconds=30), "exchange": "kraken", "symbol": "BTC/USD"},
        {"duration_s": 30, "exchange": "kraken", "symbol": "BTC/USD"},
    ),
    (
        "bars",
        {"start": "2025-12-13", "columns": ["ts", "duration_s", "close"]},
        {"start_ms": MIDNIGHT, "columns": ["ts", "duration_s", "close"]},
    ),
    ("trades", {"exchange": "binanceus", "end": MIDNIGHT}, {"exchange": "binanceus", "end_ms": MIDNIGHT}),
    (
        "trades",
        {"symbol": "ETH/USD", "columns": ["ts", "price", "amount", "side"]},
        {"symbol": "ETH/USD", "columns": ["ts", "price", "amount", "side"]},
    ),
    (
        "ticker",
        {"symbol": ["BTC/USD", "BTC/USDT"], "start": MIDNIGHT - 20_000},
        {"symbol": ["BTC/USD", "BTC/USDT"], "start_ms": MIDNIGHT - 20_000},
    ),
]


@pytest.mark.parametrize(("table", "arguments", "meaning"), CASES)
def test_rows_and_columns_are_exactly_those_of_the_files(
    recorded: Path, table: str, arguments: Filters, meaning: Filters
) -> None:
    want = expected_rows(recorded, table, meaning)
    assert want, "the case selects nothing: it would prove nothing"
    selection = fluxforge.open(recorded).table(table, **arguments)
    got = selection.to_arrow()
    assert got.to_pylist() == want
    assert got.column_names == (
        meaning.get("columns") or pq.read_schema(table_files(recorded, table)[0]).names
    )
    assert selection.to_polars().collect().to_arrow().to_pylist() == want
    pandas = selection.to_pandas()
    assert list(pandas.columns) == got.column_names
    assert len(pandas) == len(want)


def test_every_filter_prunes_partitions_before_any_file_is_opened(recorded: Path) -> None:
    filesystem, handler = counting_filesystem()
    dataset = fluxforge.open(recorded, filesystem=filesystem)
    partition = recorded / "hf/exchange=kraken/symbol=ETH%2FUSD/date=2025-12-13"
    inside = sorted(p.as_posix() for p in partition.glob("*.parquet"))
    assert len(inside) >= 2 and len(table_files(recorded, "hf")) > 4 * len(inside)

    selection = dataset.hf(exchange="kraken", symbol="ETH/USD", start="2025-12-13T00:00:05")
    rows = selection.to_arrow()
    assert rows.num_rows > 0
    # Besides its data files, a read opens the compaction marker of each partition it reads (design.md).
    assert sorted(set(handler.opened)) == sorted([*inside, f"{partition.as_posix()}/_compaction.json"])
    assert [f"{recorded.as_posix()}/{f}" for f in selection.files] == inside

    handler.opened.clear()
    lazy = dataset.bars(exchange="binanceus", symbol="SOL/USDT", end="2025-12-12T23:59:59", duration=1)
    assert lazy.to_polars().collect().height > 0
    opened = set(handler.opened)
    assert opened and all("/exchange=binanceus/symbol=SOL%2FUSDT/date=2025-12-12/" in p for p in opened)


def test_raw_rows_are_the_archived_lines_in_ingest_order(recorded: Path) -> None:
    start, end = MIDNIGHT - 3000, MIDNIGHT + 2000
    want = [
        line.decode()
        for line in archive_lines(LocalStorage(recorded))
        if (tick := orjson.loads(line))["symbol"] == "BTC/USD"
        and tick["type"] in ("book", "trade")
        and start <= (tick["ts"] if tick["ts"] is not None else tick["recv_ts"]) < end
    ]
    assert want
    raw = fluxforge.open(recorded).raw(
        symbol="BTC/USD", channel=["book", "trade"], start=start, end=end, columns=["channel", "ts", "line"]
    )
    got = raw.to_arrow()
    assert got.column("line").to_pylist() == want
    assert set(got.column("channel").to_pylist()) == {"book", "trade"}
    assert raw.files and not any("channel=ticker" in f for f in raw.files)  # the channel prunes partitions
    assert raw.to_polars().collect().height == len(want)


def test_features_in_memory_give_the_rows_of_the_run(recorded: Path) -> None:
    from tests.support.dataset import SORT_KEYS, read_dataset

    lines = list(archive_lines(LocalStorage(recorded)))
    computed = fluxforge.features(lines[:10] + [orjson.loads(line) for line in lines[10:]])
    stored = read_dataset(recorded)
    for name in ("hf", "bars", "trades", "ticker"):
        rows = getattr(computed, name).to_arrow()
        keys = [*SORT_KEYS, ("duration_s", "ascending")] if name == "bars" else SORT_KEYS
        assert rows.sort_by(keys).equals(stored[name]), name
    assert computed.rejected == []
    bad = fluxforge.features([b'{"type":"book"}'], {"horizons": [1, 5], "bar_durations": [5]})
    assert bad.hf.to_arrow().num_rows == 0 and len(bad.rejected) == 1
    with pytest.raises(ValueError, match="invalid features config"):
        fluxforge.features([], {"horizons": "x"})


def test_bad_arguments_are_refused_with_what_is_allowed(recorded: Path) -> None:
    dataset = fluxforge.open(recorded)
    with pytest.raises(ValueError, match="filters the bars table only"):
        dataset.table("hf", duration=60)
    with pytest.raises(ValueError, match="neither milliseconds"):
        dataset.hf(start="yesterday")
    with pytest.raises(ValueError, match="whole number of seconds"):
        dataset.bars(duration=dt.timedelta(milliseconds=1500))
    with pytest.raises(ValueError, match=r"no column\(s\) \['nope'\]"):
        dataset.trades(columns=["ts", "nope"])
    with pytest.raises(ValueError, match="unknown table 'quotes'"):
        dataset.table("quotes")
    with pytest.raises(ValueError, match="unknown channel"):
        dataset.raw(channel="orders")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fluxforge.open(recorded / "nope")
    with pytest.warns(DatasetWarning, match="symbols \\['BTC/USD', 'BTC/USDT'"):
        assert dataset.hf(symbol="DOGE/USDT").to_arrow().num_rows == 0


def test_one_column_named_alone_is_that_column(recorded: Path) -> None:
    dataset = fluxforge.open(recorded)
    assert dataset.hf(columns="mid").to_arrow().column_names == ["mid"]
    assert dataset.raw(columns="line").to_arrow().column_names == ["line"]


def test_tables_and_partitions(recorded: Path) -> None:
    dataset = fluxforge.open(str(recorded))
    assert dataset.tables() == ["hf", "bars", "trades", "ticker", "raw"]
    dates = {p.date for p in dataset.partitions("hf")}
    assert dates == {"2025-12-12", "2025-12-13"}


def test_import_fluxforge_loads_no_data_library() -> None:
    code = (
        "import sys, fluxforge; print(sorted(m for m in ('pyarrow', 'polars', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_query_reads_through_the_api(recorded: Path, cli: Callable[..., str], tmp_path: Path) -> None:
    out = cli(
        "query",
        "bars",
        "--root",
        recorded,
        "--symbol",
        "ETH/USD,BTC/USD",
        "--duration",
        "30s",
        "--out",
        tmp_path / "b.parquet",
    )
    want = fluxforge.open(recorded).bars(symbol=["ETH/USD", "BTC/USD"], duration=30).to_arrow()
    assert f"wrote {want.num_rows:,} rows" in out
    assert pq.read_table(tmp_path / "b.parquet").equals(want.sort_by([("ts", "ascending")]))
    raw = cli(
        "query", "raw", "--root", recorded, "--channel", "ticker", "--columns", "symbol,line", "--limit", "2"
    )
    assert '"type":"ticker"' in raw
    sql = cli(
        "query", "--root", recorded, "--sql", "select count(*) as n from trades where symbol = 'SOL/USDT'"
    )
    assert str(fluxforge.open(recorded).trades(symbol="SOL/USDT").to_arrow().num_rows) in sql
    cli("query", "hf", "--root", recorded, "--start", "tomorrow", expect_exit=1)
