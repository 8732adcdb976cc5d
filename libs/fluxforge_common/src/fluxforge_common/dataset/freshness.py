"""How recent a symbol's data is: the event time of its newest row in a table, read through storage.

Only the Parquet footers are read (the `ts` column's row-group statistics), and
only the partitions of the newest dates, so the answer costs a few small reads
on any backend however long the dataset's history is.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import pyarrow.compute as pc
import pyarrow.parquet as pq

from fluxforge_common.dataset.partitioning import encode_segment, partition_dir, utc_date
from fluxforge_common.dataset.reader import is_data_file
from fluxforge_common.storage.base import StorageBackend

DAY_MS: Final = 86_400_000
EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
RECENT_DAYS: Final = 2  # today and yesterday (UTC) are listed first; older history only if both are empty


def newest_row_ms(
    storage: StorageBackend, table: str, exchange: str, symbol: str, *, now_ms: int
) -> int | None:
    """Greatest `ts` (ms) of `exchange`/`symbol` in `table`, or None when it has no rows at all."""
    for days_back in range(RECENT_DAYS):
        directory = partition_dir(table, exchange, symbol, utc_date(now_ms - days_back * DAY_MS))
        newest = _newest_in(storage, _data_files(storage, directory))
        if newest is not None:
            return newest
    symbol_dir = "/".join((table, encode_segment("exchange", exchange), encode_segment("symbol", symbol)))
    files = _data_files(storage, symbol_dir)
    if not files:
        return None
    latest_date = max(path.rsplit("/", 2)[-2] for path in files)
    return _newest_in(storage, [path for path in files if path.rsplit("/", 2)[-2] == latest_date])


def _data_files(storage: StorageBackend, directory: str) -> list[str]:
    return [path for path in storage.list_files(directory) if is_data_file(path.rsplit("/", 1)[-1])]


def _newest_in(storage: StorageBackend, files: list[str]) -> int | None:
    found = [ts for ts in (_max_ts(storage, path) for path in files) if ts is not None]
    return max(found, default=None)


def _max_ts(storage: StorageBackend, path: str) -> int | None:
    with storage.open_random(path) as f:
        parquet = pq.ParquetFile(f)
        column = parquet.schema_arrow.get_field_index("ts")
        if column < 0:
            return None
        metadata = parquet.metadata
        maxima = []
        for group in range(metadata.num_row_groups):
            stats = metadata.row_group(group).column(column).statistics
            if stats is None or not stats.has_min_max:
                values = parquet.read(columns=["ts"]).column("ts")
                return _as_ms(pc.max(values).as_py())
            maxima.append(_as_ms(stats.max))
        return max((m for m in maxima if m is not None), default=None)


def _as_ms(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return (moment - EPOCH) // dt.timedelta(milliseconds=1)
    if isinstance(value, int):
        return value
    raise TypeError(f"unexpected ts statistic {value!r}")
