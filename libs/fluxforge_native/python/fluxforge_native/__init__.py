"""The per-update book work of the feature engine, compiled from Rust (`libs/fluxforge_native/src`).

`BookDecoder` makes valid book ticks straight from their JSON, whose sides are `Levels` of
machine floats, and `TickLane` applies a known symbol's book lines without making them (and
its trade lines without msgspec), one line or a batch's lines a call;
`SymbolCore` takes a symbol's ticks in event-time order and applies its books,
`IntervalFlows` folds each update into its grid interval, `TimeBars` folds each
closed interval into the open bars, `RollingWindows` keeps the closed intervals' columns for the
windows; `HfRows` holds the HF rows as cells, written where `HfColumns` places each feature, and
`trade_row` makes a trade's row; `ColumnBuffer` holds output rows as Arrow columns until they are
written (they take `HfRows`' cells as they are, and `RowReader` reads the sink's feature messages
into the same `ReadRows`), and a
`ParquetEncoder` writes them as Parquet; `with_ingest` stamps an archived line (`ingest_key`
reads the stamp back, `IngestMerge` merges segments by it) and `PendingLines` routes it to its
archive segment; `symbol_crc32` hashes a line for its reprocess shard, and `shard_lines` drops
the other shards' lines of a block (README "The native kernel").
"""

from fluxforge_native._native import (
    RECEIVE_CLOCK_LEAD_MS,
    RECENT_TRADE_IDS,
    BookDecoder,
    ColumnBuffer,
    HfColumns,
    HfRows,
    IngestMerge,
    IntervalFlows,
    Levels,
    ParquetEncoder,
    PendingLines,
    ReadRows,
    RollingWindows,
    RowReader,
    SymbolCore,
    TickLane,
    TimeBars,
    book_ok,
    ingest_key,
    shard_lines,
    symbol_crc32,
    trade_row,
    with_ingest,
)

__all__ = [
    "RECEIVE_CLOCK_LEAD_MS",
    "RECENT_TRADE_IDS",
    "BookDecoder",
    "ColumnBuffer",
    "HfColumns",
    "HfRows",
    "IngestMerge",
    "IntervalFlows",
    "Levels",
    "ParquetEncoder",
    "PendingLines",
    "ReadRows",
    "RollingWindows",
    "RowReader",
    "SymbolCore",
    "TickLane",
    "TimeBars",
    "book_ok",
    "ingest_key",
    "shard_lines",
    "symbol_crc32",
    "trade_row",
    "with_ingest",
]
