"""`fluxforge.open(root)`: the dataset's tables, filtered, for notebooks and scripts.

One reading path: these methods, `fluxforge query` and the plots all go
through `fluxforge_common.dataset` (`scan_table`, `read_raw`), which prunes
partitions by their paths before any file is opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, Unpack

import pyarrow.fs as pafs
from fluxforge_common.dataset.location import DatasetRoot, dataset_root
from fluxforge_common.dataset.partitioning import PARQUET_TABLES, RAW_TABLE
from fluxforge_common.dataset.raw_reader import scan_raw
from fluxforge_common.dataset.reader import PartitionInfo, Values, list_partitions, scan_table
from fluxforge_common.dataset.timespec import Duration, Instant, utc_ms, whole_seconds

from fluxforge.api.selection import Selection

if TYPE_CHECKING:
    from fluxforge_common.config.settings import S3Config


class Filters(TypedDict, total=False):
    """What every table method takes: see `Dataset`."""

    exchange: Values
    symbol: Values
    start: Instant | None
    end: Instant | None
    columns: Sequence[str] | None


class Dataset:
    """A FluxForge dataset root (local directory or `s3://bucket/prefix`).

    Every table method takes the same filters: `exchange` and `symbol` (one
    value or a list; unified symbols such as `BTC/USDT`), `start` (inclusive)
    and `end` (exclusive) as ISO strings in UTC, datetimes (naive = UTC), dates
    or epoch milliseconds, and `columns`. It returns a `Selection`; its
    `to_arrow()`, `to_polars()` (LazyFrame) or `to_pandas()` reads the rows.

    >>> ds = fluxforge.open("data")
    >>> ds.hf(symbol="BTC/USDT", start="2025-12-12T00:05", end="2025-12-12T00:10").to_polars()
    >>> ds.bars(symbol=["BTC/USDT", "ETH/USDT"], duration="1m", columns=["ts", "symbol", "close"]).to_pandas()
    """

    def __init__(self, root: DatasetRoot) -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"<fluxforge.Dataset {self.root.uri}>"

    def tables(self) -> list[str]:
        """The tables that hold data files."""
        present = [t for t in PARQUET_TABLES if list_partitions(self.root, t)]
        return present + ([RAW_TABLE] if self.root.walk(RAW_TABLE)[0] else [])

    def partitions(self, table: str) -> list[PartitionInfo]:
        """The `exchange=/symbol=/date=` partitions of a Parquet table, with their files."""
        return list_partitions(self.root, table)

    def table(self, name: str, *, duration: Duration | None = None, **filters: Unpack[Filters]) -> Selection:
        """Rows of `hf`, `bars`, `trades`, `ticker` or `ibars` (`duration` is for bars only)."""
        if name not in PARQUET_TABLES:
            raise ValueError(f"unknown table {name!r}; tables are {[*PARQUET_TABLES, RAW_TABLE]}")
        start, end = filters.get("start"), filters.get("end")
        scan = scan_table(
            self.root,
            name,
            exchange=filters.get("exchange"),
            symbol=filters.get("symbol"),
            start_ms=None if start is None else utc_ms(start),
            end_ms=None if end is None else utc_ms(end),
            duration_s=None if duration is None else whole_seconds(duration),
            columns=_column_list(filters.get("columns")),
        )
        return Selection(scan)

    def hf(self, **filters: Unpack[Filters]) -> Selection:
        """The HF grid rows (one per symbol per `features.hf_emit_interval`)."""
        return self.table("hf", **filters)

    def bars(self, *, duration: Duration | None = None, **filters: Unpack[Filters]) -> Selection:
        """Time bars; `duration` (`60`, `"1m"`, a timedelta) picks one of `features.bar_durations`."""
        return self.table("bars", duration=duration, **filters)

    def trades(self, **filters: Unpack[Filters]) -> Selection:
        """Enriched trades, one row per applied trade."""
        return self.table("trades", **filters)

    def ticker(self, **filters: Unpack[Filters]) -> Selection:
        """Enriched tickers, one row per applied ticker."""
        return self.table("ticker", **filters)

    def ibars(self, **filters: Unpack[Filters]) -> Selection:
        """Information-driven bars (tick, volume, dollar, tick imbalance; the `kind` column), labelled by
        their first trade's time."""
        return self.table("ibars", **filters)

    def raw(self, *, channel: Values = None, **filters: Unpack[Filters]) -> Selection:
        """The raw archive, one row per tick in ingest order: keys, event time, receive time and the line."""
        start, end = filters.get("start"), filters.get("end")
        return Selection(
            scan_raw(
                self.root,
                exchange=filters.get("exchange"),
                symbol=filters.get("symbol"),
                channel=channel,
                start_ms=None if start is None else utc_ms(start),
                end_ms=None if end is None else utc_ms(end),
                columns=_column_list(filters.get("columns")),
            )
        )


def open_dataset(
    root: str | Path, *, filesystem: pafs.FileSystem | None = None, s3: S3Config | None = None
) -> Dataset:
    """Open a dataset root: a local path, or a URI pyarrow knows (`s3://bucket/prefix`, reached as
    `s3` (the config's `storage.s3`) or the AWS environment says); `filesystem` (a pyarrow
    FileSystem) reads `root` as a path on it instead."""
    return Dataset(dataset_root(root, filesystem, s3=s3).existing())


def _column_list(columns: Sequence[str] | None) -> Sequence[str] | None:
    """One column may be named alone: a string is a sequence of its letters, never what was meant."""
    return [columns] if isinstance(columns, str) else columns
