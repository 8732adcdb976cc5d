"""Reading the raw archive back as a table: one row per archived tick, in ingest order.

Partitions (`raw/exchange=/channel=/date=`) are chosen from their paths;
symbol and time are row filters. Rows keep the archived line itself, so
nothing of what the exchange sent is lost, beside the keys every row carries.
The order is the one reprocessing applies the ticks in (`pipeline.ingest_order`).
"""

from __future__ import annotations

import heapq
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypedDict, Unpack

import msgspec
import pyarrow as pa

from fluxforge_common.dataset.location import DatasetRoot, dataset_root
from fluxforge_common.dataset.partitioning import CHANNELS, RAW_TABLE, parse_segment, utc_date
from fluxforge_common.dataset.reader import DatasetWarning, Values, value_set
from fluxforge_common.dataset.schema import TS_TYPE
from fluxforge_common.pipeline.ingest_order import ingest_key
from fluxforge_common.writers.ndjson import read_lines

RAW_SCHEMA: Final = pa.schema(
    [
        ("exchange", pa.string()),
        ("symbol", pa.string()),
        ("channel", pa.string()),
        ("ts", TS_TYPE),  # event time: the exchange's ts, else recv_ts (docs/design.md "Raw messages")
        ("recv_ts", TS_TYPE),
        ("line", pa.string()),  # the archived JSON line, `_ingest` included
    ]
)
_SUFFIXES: Final = (".ndjson", ".ndjson.zst")


class RawHead(msgspec.Struct):
    """The fields of an archived tick the readers use; the rest stays in the line."""

    exchange: str
    symbol: str
    recv_ts: int
    ts: int | None = None
    type: str = ""
    id: str | None = None  # a trade's id
    resync: str | None = None  # on a book: the collector resynchronised the symbol before it
    backfilled: bool = False  # on a trade: fetched over REST after a disconnect or an id gap


_decode_head = msgspec.json.Decoder(RawHead)


@dataclass(frozen=True, slots=True)
class RawPartition:
    """A `raw/exchange=/channel=/date=` directory, values decoded, with its segment files."""

    path: str
    exchange: str
    channel: str
    date: str
    files: tuple[str, ...]


def scan_raw_partitions(root: str | Path | DatasetRoot) -> list[RawPartition]:
    """The raw archive's partitions with sealed segments (unsealed and temporary files are hidden)."""
    files, _dirs = dataset_root(root).walk(RAW_TABLE)
    grouped: dict[tuple[str, ...], list[str]] = {}
    for rel in files:
        parts = tuple(rel.split("/"))
        if len(parts) == 5 and not any(p.startswith(".") for p in parts) and parts[4].endswith(_SUFFIXES):
            grouped.setdefault(parts[:4], []).append(rel)
    partitions = []
    for parts, names in sorted(grouped.items()):
        try:
            exchange = parse_segment(parts[1], "exchange")
            channel = parse_segment(parts[2], "channel")
            date = parse_segment(parts[3], "date")
        except ValueError:
            continue  # `fluxforge validate` reports it
        if channel in CHANNELS:
            partitions.append(RawPartition("/".join(parts), exchange, channel, date, tuple(names)))
    return partitions


@dataclass(frozen=True, slots=True)
class RawScan:
    """The raw segments chosen by their partitions, and the row filters still to apply when read."""

    root: DatasetRoot
    table: str
    files: tuple[str, ...]
    channels: tuple[str, ...]  # the channel of each file
    symbols: frozenset[str] | None
    start_ms: int | None
    end_ms: int | None
    columns: list[str] | None
    described: str  # the selection and what the archive holds, for the no-match warning

    def lines(self) -> Iterator[tuple[str, RawHead, bytes]]:
        """(channel, keys and times, archived line) of every matching tick, in ingest order."""
        streams = [_tagged_lines(self.root, c, f) for c, f in zip(self.channels, self.files, strict=True)]
        symbols, start_ms, end_ms = self.symbols, self.start_ms, self.end_ms
        for line, channel, rel in heapq.merge(*streams, key=lambda item: ingest_key(item[0])):
            try:
                head = _decode_head.decode(line)
            except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                raise ValueError(f"{rel}: a line is not a raw envelope ({exc}): {line[:120]!r}") from None
            event = head.recv_ts if head.ts is None else head.ts
            if (
                (symbols is None or head.symbol in symbols)
                and (start_ms is None or event >= start_ms)
                and (end_ms is None or event < end_ms)
            ):
                yield channel, head, line

    def to_table(self) -> pa.Table:
        """The matching ticks in ingest order; an empty result says what exists (`DatasetWarning`)."""
        columns: dict[str, list[object]] = {name: [] for name in RAW_SCHEMA.names}
        for channel, head, line in self.lines():
            event = head.recv_ts if head.ts is None else head.ts
            for name, value in zip(
                RAW_SCHEMA.names,
                (head.exchange, head.symbol, channel, event, head.recv_ts, line.decode()),
                strict=True,
            ):
                columns[name].append(value)
        result = pa.table(columns, schema=RAW_SCHEMA)
        if result.num_rows == 0:
            warnings.warn(f"no raw ticks match {self.described}", DatasetWarning, stacklevel=2)
        return result.select(self.columns) if self.columns is not None else result


def scan_raw(
    storage_root: str | Path | DatasetRoot,
    *,
    exchange: Values = None,
    symbol: Values = None,
    channel: Values = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    columns: Sequence[str] | None = None,
) -> RawScan:
    """Choose the raw segments for these filters (event time in `[start_ms, end_ms)`) from their paths.

    Symbol and time are applied to the rows when read; columns are those of `RAW_SCHEMA`.
    """
    root = dataset_root(storage_root)
    exchanges, symbols = value_set(exchange, "exchange"), value_set(symbol, "symbol")
    channels = value_set(channel, "channel")
    if channels is not None and (unknown := sorted(channels - set(CHANNELS))):
        raise ValueError(f"unknown channel(s) {unknown}; channels are {list(CHANNELS)}")
    if columns is not None and (missing := [c for c in columns if c not in RAW_SCHEMA.names]):
        raise ValueError(f"raw has no column(s) {missing}; it has {RAW_SCHEMA.names}")
    first_date = utc_date(start_ms) if start_ms is not None else None
    last_date = utc_date(end_ms - 1) if end_ms is not None else None
    partitions = scan_raw_partitions(root)
    chosen = [
        (part.channel, rel)
        for part in partitions
        if (exchanges is None or part.exchange in exchanges)
        and (channels is None or part.channel in channels)
        and (first_date is None or part.date >= first_date)
        and (last_date is None or part.date <= last_date)
        for rel in part.files
    ]
    dates = sorted({p.date for p in partitions})
    described = (
        f"exchange={exchange!r} symbol={symbol!r} channel={channel!r} ts in [{start_ms}, {end_ms}); the archive "
        f"has exchanges {sorted({p.exchange for p in partitions})}, dates "
        f"{dates[0] + '..' + dates[-1] if dates else 'none'}"
    )
    return RawScan(
        root,
        RAW_TABLE,
        tuple(rel for _c, rel in chosen),
        tuple(c for c, _rel in chosen),
        symbols,
        start_ms,
        end_ms,
        list(columns) if columns is not None else None,
        described,
    )


class RawFilters(TypedDict, total=False):
    """The filters of `scan_raw`."""

    exchange: Values
    symbol: Values
    channel: Values
    start_ms: int | None
    end_ms: int | None
    columns: Sequence[str] | None


def read_raw(storage_root: str | Path | DatasetRoot, **filters: Unpack[RawFilters]) -> pa.Table:
    """The archived ticks matching the filters of `scan_raw`, in ingest order."""
    return scan_raw(storage_root, **filters).to_table()


def _tagged_lines(root: DatasetRoot, channel: str, rel: str) -> Iterator[tuple[bytes, str, str]]:
    compression = "zstd" if rel.endswith(".zst") else None
    with root.open_input(rel, compression=compression) as stream:
        for line in read_lines(stream):
            if line.strip():
                yield line, channel, rel
