"""The per-update book work of the feature engine, compiled from Rust (`libs/fluxforge_native/src`).

`BookDecoder` makes book ticks straight from their JSON, whose sides are `Levels` of machine
floats; `IntervalFlows` folds each update into its grid interval, and `RollingWindows` keeps the
closed intervals' columns for the windows; `ColumnBuffer` holds output rows as Arrow columns
until they are written (`RowReader` reads the sink's feature messages straight into them), and
`encode_parquet` writes them as Parquet; `with_ingest` stamps an archived line (README "The
native kernel").
"""

from fluxforge_native._native import (
    BookDecoder,
    ColumnBuffer,
    IntervalFlows,
    Levels,
    ReadRows,
    RollingWindows,
    RowReader,
    book_ok,
    encode_parquet,
    with_ingest,
)

__all__ = [
    "BookDecoder",
    "ColumnBuffer",
    "IntervalFlows",
    "Levels",
    "ReadRows",
    "RollingWindows",
    "RowReader",
    "book_ok",
    "encode_parquet",
    "with_ingest",
]
