"""`PartitionedParquetWriter`: rows in, one Parquet file per Hive partition out.

Rows are buffered per (exchange, symbol, UTC date of ts) and written on
`flush`, one immutable file per partition, through the storage backend's
atomic writer. The caller decides when (by `buffered_rows`, by time, or at a
Kafka commit) and may name the files: the same stem rewrites the same files,
which is how a sink that replays a batch after a crash ends up with the same
dataset instead of a doubled one. Every file carries the key-value metadata
the caller gives (the run modes give their provenance, `dataset.provenance`).
"""

from __future__ import annotations

import base64
import contextlib
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Any, Final, Literal

import pyarrow as pa
from fluxforge_native import ColumnBuffer, ParquetEncoder, ReadRows, RowReader

from fluxforge_common.dataset.partitioning import check_table, partition_dir, utc_date
from fluxforge_common.dataset.schema import TS_TYPE, column_kinds
from fluxforge_common.messages.decoding import MAX_TS_MS, MIN_TS_MS
from fluxforge_common.storage.base import StorageBackend
from fluxforge_common.writers.common import WrittenFile, check_stem, new_stem

Row = Mapping[str, Any]
PartitionKey = tuple[str, str, str]  # exchange, symbol, date
Compression = Literal["zstd", "snappy", "gzip", "lz4", "none"]
# Rows the native columns do not take (`fluxforge_native.ColumnBuffer`: a value of another type,
# a schema with nested columns) are held as dicts and turned into an Arrow batch this many at a
# time: a wide HF row costs ~10 KB as Python objects but ~1 KB in Arrow.
CHUNK_ROWS = 1024
# What converting rows that do not fit a schema raises (pyarrow's own errors, and Python's for a value
# no Arrow type holds: an int beyond int64, a string that is not UTF-8).
CONVERSION_ERRORS: Final = (
    pa.ArrowInvalid,
    pa.ArrowTypeError,
    pa.ArrowNotImplementedError,
    ValueError,
    TypeError,
    OverflowError,
)
# A flush writes at most this many files at a time (encoded, then made durable together): a sink
# chunk of 50 symbols on two exchanges (100 files) is one window, one round of disk waits, not two.
# The window's encoded files are a fraction of the columns the flush holds anyway.
WINDOW_FILES: Final = 256
# zstd costs ~13 us per column chunk whatever its size (a compression context per call); a
# file of fewer rows than this (columns under ~2 KiB of 8-byte values), as the sink's files of a
# few dozen rows, is no smaller with it than with lz4, which costs ~2 us a chunk (README
# "Performance"). Counted in rows: the bytes of a table of slices (`nbytes`) cost ~180 us to sum.
SMALL_FILE_ROWS: Final = 256
# Files are encoded on this many threads (the encoding runs without the GIL): one core each.
ENCODER_THREADS: Final = min(4, os.cpu_count() or 1)
_encoding_threads = ThreadPoolExecutor(ENCODER_THREADS, thread_name_prefix="fluxforge-parquet")


# Rows `offset` to `offset + length` of a batch: the partitions whose rows one batch holds share it,
# so a flush exports it to the encoder once per window of files (~1 us a column), not once a file.
Piece = tuple[pa.RecordBatch, int, int]
# A piece as the encoder reads it: the batch's exported schema and array, offset, length.
ExportedPiece = tuple[object, object, int, int]


class _PartitionBuffer:
    """A partition's rows, in order: pieces of Arrow batches, its rows in the writer's columns, rows held as dicts."""

    __slots__ = ("batches", "count", "first_ts", "rows", "slot")

    def __init__(self, first_ts: int) -> None:
        self.first_ts = first_ts
        self.batches: list[Piece] = []
        self.slot: int | None = None  # its partition number in the writer's columns while it has rows there
        self.rows: list[Row] = []
        self.count = 0


def check_row_schema(schema: pa.Schema) -> pa.Schema:
    """Return `schema` if it has the columns every row carries, else raise ValueError.

    `exchange` and `symbol` (strings) and `ts` (UTC milliseconds) are ordinary
    columns as well as the partition keys, so a file means the same thing
    without its path.
    """
    for name in ("exchange", "symbol"):
        index = schema.get_field_index(name)
        if index < 0 or not pa.types.is_string(schema.field(index).type):
            raise ValueError(f"schema needs a string column {name!r}")
    index = schema.get_field_index("ts")
    if index < 0 or schema.field(index).type != TS_TYPE:
        raise ValueError(f"schema needs a column 'ts' of type {TS_TYPE}")
    return schema


class PartitionedParquetWriter:
    """Buffers rows per partition of `table` and writes each partition's rows as one Parquet file.

    A row's values go into native typed columns when it is added (`column_kinds`); a row holding
    a value they do not take is kept by reference until `flush` instead, so do not mutate rows
    after `add`.
    Not thread-safe: one writer per consumer task.
    """

    def __init__(
        self,
        storage: StorageBackend,
        table: str,
        schema: pa.Schema,
        *,
        compression: Compression = "zstd",
        row_group_size: int = 65_536,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        if row_group_size < 1:
            raise ValueError(f"row_group_size must be positive, got {row_group_size}")
        self.storage = storage
        self.table = check_table(table)
        self.schema = check_row_schema(schema)
        self.metadata = dict(metadata or {})
        self._columns = frozenset(map(sys.intern, schema.names))  # the engine's keys are interned
        self._files = TableEncoder(schema, compression=compression, row_group_size=row_group_size)
        kinds = column_kinds(schema)
        self._column_rows = None if kinds is None else ColumnBuffer(kinds)
        self._slots: list[_PartitionBuffer] = []  # the partitions with rows in `_column_rows`, by slot
        self._buffers: dict[PartitionKey, _PartitionBuffer] = {}
        self._buffered_rows = 0

    @property
    def buffered_rows(self) -> int:
        """Rows added and not yet flushed, over all partitions (for flush-by-size)."""
        return self._buffered_rows

    @property
    def buffered_partitions(self) -> int:
        """Partitions with unflushed rows: the number of files the next `flush` writes."""
        return len(self._buffers)

    def add(self, rows: Iterable[Row]) -> list[PartitionKey]:
        """Buffer `rows` and return their partitions; all or nothing: a bad row raises ValueError
        and none of `rows` is kept."""
        staged: dict[PartitionKey, list[Row]] = {}
        count = 0
        for row in rows:
            try:
                key = (row["exchange"], row["symbol"], utc_date(row["ts"]))
            except KeyError as exc:
                raise ValueError(f"{self.table} row lacks column {exc}: {_abbrev(row)}") from None
            if not row.keys() <= self._columns:
                unknown = sorted(set(row) - self._columns)
                raise ValueError(f"{self.table} row has columns not in the schema: {unknown}")
            bucket = staged.get(key)
            if bucket is None:
                if key not in self._buffers:
                    partition_dir(self.table, *key)  # fail here, not at flush, on an unusable name
                bucket = staged[key] = []
            bucket.append(row)
            count += 1
        self._add_rows(staged)
        self._buffered_rows += count
        return list(staged)

    def add_read(self, rows: ReadRows) -> list[PartitionKey] | None:
        """Buffer rows read by this schema's `row_reader` and return their partitions; all or
        nothing: ValueError for a partition whose name is not usable; None, with none kept, where
        they cannot go into the writer's columns (`add` them as dicts instead: a partition holding
        dicts keeps its order that way)."""
        columns = self._column_rows
        if columns is None:
            return None
        # One pass over the partitions (a feature message holds one): each one's buffer, and the
        # slot it has in the columns or gets now, in order after the slots taken.
        known = self._buffers
        fresh = len(self._slots)
        keys: list[PartitionKey] = []
        found: list[tuple[_PartitionBuffer, int]] = []
        slots: list[int] = []
        for exchange, symbol, first_ts, count in rows.partitions():
            key = (exchange, symbol, utc_date(first_ts))
            buffer = known.get(key)
            if buffer is None:
                partition_dir(self.table, *key)  # fail here, not at flush, on an unusable name
                buffer = _PartitionBuffer(first_ts)
            elif buffer.rows:
                return None
            slot = buffer.slot
            if slot is None:
                slot = fresh
                fresh += 1
            keys.append(key)
            found.append((buffer, count))
            slots.append(slot)
        if not columns.extend(rows, slots):
            return None
        for key, (buffer, count), slot in zip(keys, found, slots, strict=True):
            if buffer.slot is None:
                buffer.slot = slot
                self._slots.append(buffer)
            known[key] = buffer
            buffer.count += count
        self._buffered_rows += len(rows)
        return keys

    def _add_rows(self, staged: dict[PartitionKey, list[Row]]) -> None:
        """Each partition's rows into the writer's columns, else held as dicts; a partition then
        holding `CHUNK_ROWS` dicts has them converted, and one that does not fit undoes the whole add."""
        columns = self._column_rows
        before = (0 if columns is None else len(columns), len(self._slots))
        held: list[int] = []  # per partition of `staged`, the dicts it held before
        full: list[_PartitionBuffer] = []
        for key, bucket in staged.items():
            buffer = self._buffers.get(key)
            if buffer is None:
                buffer = self._buffers[key] = _PartitionBuffer(bucket[0]["ts"])
            held.append(len(buffer.rows))
            buffer.count += len(bucket)
            if not buffer.rows and columns is not None:
                slot = len(self._slots) if buffer.slot is None else buffer.slot
                if columns.append(bucket, slot):
                    if buffer.slot is None:
                        buffer.slot = slot
                        self._slots.append(buffer)
                    continue
            buffer.rows.extend(bucket)
            if len(buffer.rows) >= CHUNK_ROWS:
                full.append(buffer)
        try:
            converted = [rows_to_batch(buffer.rows, self.schema) for buffer in full]
        except CONVERSION_ERRORS as exc:
            self._undo(staged, before, held)
            raise ValueError(f"{self.table} rows do not fit the schema: {exc}") from exc
        if full:
            self._distribute()  # the partitions' rows in columns come before their dicts
            for buffer, batch in zip(full, converted, strict=True):
                buffer.batches.append((batch, 0, batch.num_rows))
                buffer.rows = []

    def _undo(self, staged: dict[PartitionKey, list[Row]], before: tuple[int, int], held: list[int]) -> None:
        columns_rows, slots = before
        if self._column_rows is not None:
            self._column_rows.truncate(columns_rows)
        for buffer in self._slots[slots:]:
            buffer.slot = None
        del self._slots[slots:]
        for (key, bucket), rows in zip(staged.items(), held, strict=True):
            buffer = self._buffers[key]
            del buffer.rows[rows:]
            buffer.count -= len(bucket)
            if not buffer.count:
                del self._buffers[key]

    def _distribute(self) -> None:
        """The rows in the writer's columns, as one batch, into their partitions' pieces."""
        columns = self._column_rows
        if columns is None or not len(columns):
            return
        counts, batch = columns_to_batch(columns, self.schema)
        offset = 0
        for buffer, count in zip(self._slots, counts, strict=True):
            buffer.batches.append((batch, offset, count))
            buffer.slot = None
            offset += count
        self._slots = []

    def flush(
        self, file_stem: str | None = None, metadata: Mapping[str, str] | None = None
    ) -> list[WrittenFile]:
        """Write every buffered partition to `<partition dir>/<stem>.parquet` and empty the buffer.

        `metadata` is added to (and overrides keys of) the writer's own for these files.

        With `file_stem` the names are the caller's (e.g. Kafka topic+partition+
        offsets), so a repeated flush of the same data replaces the same files;
        without it each file gets a fresh time-sortable stem. Partitions are
        written in sorted order, up to `WINDOW_FILES` at a time made durable together
        (`StorageBackend.write_all`); if one fails, it and the ones after it stay buffered and the exception
        propagates, so a retry with the same stem converges on the same files.
        """
        if file_stem is not None:
            check_stem(file_stem)
        footer = self.metadata | dict(metadata or {})
        self._distribute()
        written: list[WrittenFile] = []
        for window in self._windows(sorted(self._buffers)):
            written += self._write(window, file_stem, footer)
        return written

    def _windows(self, keys: list[PartitionKey]) -> Iterator[list[PartitionKey]]:
        """Consecutive runs of at most `WINDOW_FILES` partitions, written together."""
        for start in range(0, len(keys), WINDOW_FILES):
            yield keys[start : start + WINDOW_FILES]

    def _write(
        self, keys: list[PartitionKey], file_stem: str | None, footer: dict[str, str]
    ) -> list[WrittenFile]:
        paths = [self._path(key, file_stem) for key in keys]
        sizes: dict[str, int] = {}

        def encoded() -> Iterator[tuple[str, bytes]]:
            files: list[list[ExportedPiece]] = []
            misfit: ValueError | None = None
            exported: dict[int, tuple[object, object]] = {}  # by id of a batch the buffers hold
            try:
                for pieces in self._pieces(keys, paths):
                    files.append([])
                    for batch, offset, length in pieces:
                        capsules = exported.get(id(batch))
                        if capsules is None:
                            capsules = exported[id(batch)] = batch.__arrow_c_array__()
                        files[-1].append((*capsules, offset, length))
            except ValueError as exc:  # the partitions before it are still written
                misfit = exc
            schema = self.schema.with_metadata(footer) if footer else self.schema.remove_metadata()
            footers = repeat(parquet_footer(schema))  # one schema, one footer
            for path, data in zip(
                paths, _encoding_threads.map(self._files.encode, files, footers), strict=False
            ):
                sizes[path] = len(data)
                yield path, data
            if misfit is not None:
                raise misfit

        written: list[WrittenFile] = []
        for key, path in zip(keys, self.storage.write_all(encoded()), strict=False):
            buffer = self._buffers.pop(key)
            self._buffered_rows -= buffer.count
            written.append(WrittenFile(path, buffer.count, sizes[path]))
        return written

    def _path(self, key: PartitionKey, file_stem: str | None) -> str:
        stem = file_stem if file_stem is not None else new_stem("part", self._buffers[key].first_ts)
        return f"{partition_dir(self.table, *key)}/{stem}.parquet"

    def _pieces(self, keys: list[PartitionKey], paths: list[str]) -> Iterator[list[Piece]]:
        """Each partition's rows as pieces of batches, in order; a partition whose rows do not fit
        raises there.

        Rows held as dicts stay in their partition as a batch once converted, so a write that
        fails leaves it buffered whole.
        """
        for key, path in zip(keys, paths, strict=True):
            buffer = self._buffers[key]
            if buffer.rows:
                try:
                    batch = rows_to_batch(buffer.rows, self.schema)
                except CONVERSION_ERRORS as exc:
                    raise ValueError(f"rows for {path} do not fit the {self.table} schema: {exc}") from exc
                buffer.batches.append((batch, 0, batch.num_rows))
                buffer.rows = []
            yield buffer.batches


def rows_to_batch(rows: list[Row], schema: pa.Schema) -> pa.RecordBatch:
    """`rows` as a batch of `schema`, a missing key as null; raises ArrowInvalid or ArrowTypeError
    for a value that does not fit.

    Rows are read into tuples in the schema's order and transposed, then each column is converted
    at once. Plain dicts are read by one `itemgetter` (in C; by `get` only when one lacks a key):
    on 105-column HF rows 7.6 us a row, against 10.6 reading each key in Python and 12-17 by
    `RecordBatch.from_pylist` (README "Performance"). Other mappings are read by `get`, as a
    subscript would call a `defaultdict`'s factory for a missing key instead of giving null.
    """
    if not rows:
        return pa.RecordBatch.from_pylist([], schema=schema)
    names = schema.names
    values: list[Any] | None = None
    if len(names) > 1 and set(map(type, rows)) == {dict}:  # itemgetter of one name gives no tuple
        with contextlib.suppress(KeyError):
            values = list(map(itemgetter(*names), rows))
    if values is None:
        values = [[row.get(name) for name in names] for row in rows]
    columns = zip(*values, strict=True)
    arrays = [pa.array(column, type=field.type) for column, field in zip(columns, schema, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def row_reader(schema: pa.Schema) -> RowReader | None:
    """A reader of feature messages (`messages.rows`) straight into the columns of a writer of
    `schema` (`PartitionedParquetWriter.add_read`), or None when they have no `column_kinds`.

    It takes rows whose `ts` is plausible (`MIN_TS_MS` to `MAX_TS_MS`), those whose time the
    sink's chunks go by; the others are decoded as dicts.
    """
    kinds = column_kinds(schema)
    return None if kinds is None else RowReader(kinds, (MIN_TS_MS, MAX_TS_MS))


def columns_to_batch(columns: ColumnBuffer, schema: pa.Schema) -> tuple[list[int], pa.RecordBatch]:
    """What `columns` holds as one batch of `schema` (the schema it was made for), its rows grouped
    by partition, and the rows of each partition in that order; empties it."""
    rows = len(columns)
    counts, buffers = columns.take()
    arrays = []
    for field, (nulls, validity, offsets, values) in zip(schema, buffers, strict=True):
        parts = [None if validity is None else pa.py_buffer(validity)]
        if offsets is not None:
            parts.append(pa.py_buffer(offsets))
        parts.append(pa.py_buffer(values))
        arrays.append(pa.Array.from_buffers(field.type, rows, parts, null_count=nulls))
    return counts, pa.RecordBatch.from_arrays(arrays, schema=schema)


@dataclass(frozen=True, slots=True)
class ColumnEncodings:
    """The columns of a schema written with dictionary pages and with statistics (`encode_parquet`).

    Dictionary pages pay off for the repeated strings (exchange, symbol, side) and cost
    more than they save on float columns: a 60-row HF file of ~100 columns is written
    ~1.5-2x faster and ~12 % smaller without them. Statistics are written for the columns reads
    filter on (keys, times, counts); on the float features no read prunes, and they made a
    30-row HF file 1.15x slower to write and 20 % larger (README "Performance"). A writer works
    them out once: for 105 columns that is ~70 us, against ~0.7 ms to encode a 30-row file.
    """

    dictionary: tuple[str, ...]
    statistics: tuple[str, ...]

    @classmethod
    def of(cls, schema: pa.Schema) -> ColumnEncodings:
        kinds = list(zip(schema.names, schema.types, strict=True))
        return cls(
            tuple(name for name, kind in kinds if pa.types.is_string(kind)),
            tuple(name for name, kind in kinds if _prunable(kind)),
        )


def encode_parquet(
    table: pa.Table,
    *,
    compression: Compression = "zstd",
    row_group_size: int = 65_536,
    encodings: ColumnEncodings | None = None,
    footer: Sequence[tuple[str, str]] | None = None,
) -> bytes:
    """The Parquet file of `table`; `encodings` are `table`'s (`ColumnEncodings.of` its schema when
    None) and `footer` its key-value metadata (`parquet_footer` of its schema when None)."""
    pieces = [(*batch.__arrow_c_array__(), 0, batch.num_rows) for batch in table.to_batches()]
    files = TableEncoder(
        table.schema, compression=compression, row_group_size=row_group_size, encodings=encodings
    )
    return files.encode(pieces, parquet_footer(table.schema) if footer is None else footer)


class TableEncoder:
    """Parquet files of one schema, encoded natively (`fluxforge_native.ParquetEncoder`, the columns
    read in place), one native encoder per codec a file gets: made once, shared by the encoding
    threads."""

    def __init__(
        self,
        schema: pa.Schema,
        *,
        compression: Compression,
        row_group_size: int,
        encodings: ColumnEncodings | None = None,
    ) -> None:
        self.schema = schema
        self.compression = compression
        self.row_group_size = row_group_size
        self.encodings = encodings or ColumnEncodings.of(schema)
        self._native: dict[str, ParquetEncoder] = {}

    def encode(self, pieces: list[ExportedPiece], footer: Sequence[tuple[str, str]]) -> bytes:
        """The Parquet file of the rows of `pieces`, in order, its key-value metadata `footer`."""
        small = self.compression == "zstd" and sum(length for *_, length in pieces) < SMALL_FILE_ROWS
        codec = "lz4" if small else self.compression
        native = self._native.get(codec)
        if native is None:  # two threads may both make it: either one serves
            native = self._native[codec] = ParquetEncoder(
                self.schema.__arrow_c_schema__(),
                compression=codec,
                row_group_size=self.row_group_size,
                dictionary=list(self.encodings.dictionary),
                statistics=list(self.encodings.statistics),
            )
        return native.encode(pieces, list(footer))


def parquet_footer(schema: pa.Schema) -> list[tuple[str, str]]:
    """The key-value metadata of a Parquet file of `schema`, as pyarrow writes it: the schema's
    own, then the schema itself (`ARROW:schema`), so that readers get its Arrow types back."""
    pairs = [(key.decode(), value.decode()) for key, value in (schema.metadata or {}).items()]
    pairs.append(("ARROW:schema", base64.b64encode(schema.serialize().to_pybytes()).decode()))
    return pairs


def _prunable(kind: pa.DataType) -> bool:
    """Whether readers filter on a column of this type (its statistics are written): not on features."""
    return not pa.types.is_floating(kind) and not pa.types.is_nested(kind)


def write_parquet(
    storage: StorageBackend,
    path: str,
    table: pa.Table,
    *,
    compression: Compression = "zstd",
    row_group_size: int = 65_536,
) -> int:
    """Write `table` as the Parquet file `path` (`encode_parquet`); returns its size."""
    data = encode_parquet(table, compression=compression, row_group_size=row_group_size)
    storage.write_bytes(path, data)
    return len(data)


def _abbrev(row: Row) -> str:
    text = repr(dict(row))
    return text if len(text) <= 200 else text[:200] + "..."
