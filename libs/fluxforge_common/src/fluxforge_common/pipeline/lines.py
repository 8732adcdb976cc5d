"""Where raw lines come from in the embedded and reprocess modes."""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pyarrow as pa
from fluxforge_native import IngestMerge

from fluxforge_common.config.settings import S3Config
from fluxforge_common.dataset.partitioning import decode_value, encode_segment
from fluxforge_common.pipeline.ingest_order import backfilled_trades, in_event_time_place
from fluxforge_common.simulator import MarketSimulator, SimulatorConfig
from fluxforge_common.storage.base import StorageBackend
from fluxforge_common.storage.local import LocalStorage
from fluxforge_common.storage.location import storage_at
from fluxforge_common.storage.s3url import is_s3_url
from fluxforge_common.writers.ndjson import block_lines, ndjson_blocks, read_lines

if TYPE_CHECKING:
    from fluxforge_common.pipeline.shards import Shard

RAW_PREFIX = "raw/"
# What a source yields after `IDLE_AFTER_S` without a line (a silent pipe or market): no line, a
# turn for the run to look at its clock (files due by `embedded.flush_interval_s`, progress).
IDLE: Final = b""
IDLE_AFTER_S: Final = 1.0
STDIN_READ_BYTES: Final = 1 << 16
# A file's read buffer: the default (its block size, 4 KiB) makes ~29,000 reads of a 300,000-line
# file, ~0.25 us a line; a read returns what a pipe holds, so a larger one never holds lines back.
FILE_READ_BYTES: Final = 1 << 20


def simulator_lines(cfg: SimulatorConfig) -> Iterator[bytes]:
    """The simulated market's endless stream; the pipeline decides when to stop."""
    return MarketSimulator(cfg).ticks()


def file_lines(path: str | Path) -> Iterator[bytes]:
    """Lines of an NDJSON file (`.zst` decompressed) or of stdin for `-`; blank lines skipped."""
    if str(path) == "-":
        try:
            fd = sys.stdin.fileno()
        except (AttributeError, OSError, ValueError):
            yield from _non_blank(sys.stdin.buffer)  # a stream in memory (embedded use, tests): never silent
        else:
            yield from stdin_lines(fd, idle_after_s=IDLE_AFTER_S)
    elif str(path).endswith(".zst"):
        with pa.input_stream(str(path), compression="zstd") as stream:
            yield from _non_blank(read_lines(stream))
    else:
        # line by line: a named pipe's lines come as they are written
        with Path(path).open("rb", buffering=FILE_READ_BYTES) as f:
            yield from _non_blank(f)


def stdin_lines(fd: int = 0, *, idle_after_s: float | None = None) -> Iterator[bytes]:
    """Lines of standard input (blank lines skipped, CR LF accepted), and `IDLE` after every
    `idle_after_s` in which none came (never when None).

    Read with `os.read` rather than `sys.stdin.buffer`: a reader thread is then
    blocked in a plain system call holding no Python lock, so a collector
    stopped while the pipe is open but idle can exit (a daemon thread blocked
    inside a buffered read makes interpreter shutdown abort).
    """
    parts: list[bytes] = []  # the start of a line longer than the chunks read so far
    while True:
        if idle_after_s is not None and not select.select([fd], [], [], idle_after_s)[0]:
            yield IDLE
            continue
        chunk = os.read(fd, STDIN_READ_BYTES)
        if not chunk:
            break
        if b"\n" not in chunk:
            parts.append(chunk)  # joined once its end comes: a long line costs its length, not its square
            continue
        lines = b"".join([*parts, chunk]).split(b"\n")
        parts = [lines.pop()]
        for line in lines:
            line = line.rstrip(b"\r")
            if line.strip():
                yield line
    tail = b"".join(parts)
    if tail.strip():
        yield tail.rstrip(b"\r")


def _non_blank(lines: Iterable[bytes]) -> Iterator[bytes]:
    for line in lines:
        line = line.rstrip(b"\r\n")  # the line itself, not a copy, when it has no line end
        if line and not line.isspace():
            yield line


def _partition_texts(storage: StorageBackend, key: str) -> set[str]:
    """The values of the `key=` directories holding raw archive segments, as the paths spell them."""
    prefix = f"{key}="
    return {
        part[len(prefix) :]
        for path in storage.list_files(RAW_PREFIX)
        for part in path.split("/")
        if part.startswith(prefix)
    }


def archive_dates(storage: StorageBackend) -> list[str]:
    """Every date that has raw archive segments, sorted."""
    return sorted(_partition_texts(storage, "date"))


def archive_exchanges(storage: StorageBackend) -> list[str]:
    """Every exchange that has raw archive segments, sorted, its name decoded from the path."""
    return sorted(decode_value(text, key="exchange") for text in _partition_texts(storage, "exchange"))


def archive_lines(
    storage: StorageBackend,
    dates: Iterable[str] | None = None,
    shard: Shard | None = None,
    exchange: str | None = None,
) -> Iterator[bytes]:
    """The raw archive's ticks for `dates` (all when None), of the symbols of `shard` (all when
    None), of `exchange`'s segments only, given one (the others are not read), merged back into
    ingest order, backfilled trades at their event time's place (`ingest_order`)."""
    wanted = None if dates is None else set(dates)
    prefix = RAW_PREFIX if exchange is None else f"{RAW_PREFIX}{encode_segment('exchange', exchange)}/"
    files = [
        path
        for path in storage.list_files(prefix)
        if wanted is None or any(part[5:] in wanted for part in path.split("/") if part.startswith("date="))
    ]
    yield from _segment_lines(storage, files, shard)


def _segment_lines(storage: StorageBackend, files: list[str], shard: Shard | None = None) -> Iterator[bytes]:
    """The ticks of the raw segments `files`, as `archive_lines` gives them.

    Each segment is in ingest order (its writer stamps its lines in order, or writes them in offset
    order), which the merge relies on. A shard's lines are picked from each segment before the
    merge, which then handles only them: a backfilled trade's place depends on its own symbol's
    ticks alone, so it is where the whole archive has it.
    """
    trade_files = [path for path in files if "/channel=trade/" in path]
    backfilled = backfilled_trades(_lines_of(storage, trade_files, shard))
    merged = IngestMerge([_segment(storage, path, shard) for path in files])  # opens every segment
    yield from in_event_time_place(merged, backfilled) if backfilled else merged


def _lines_of(storage: StorageBackend, files: list[str], shard: Shard | None) -> Iterator[bytes]:
    """One file after another, read as they are needed."""
    for path in files:
        for lines in _segment(storage, path, shard):
            yield from lines


def _segment(storage: StorageBackend, path: str, shard: Shard | None) -> Iterator[list[bytes]]:
    """The lines of segment `path` (of `shard`'s symbols only, given one), a block at a time."""
    for block in ndjson_blocks(storage, path):
        yield block_lines(block) if shard is None else shard.lines_of(block)


def date_range(start: str, end: str) -> list[str]:
    first, last = date.fromisoformat(start), date.fromisoformat(end)
    if last < first:
        raise ValueError(f"end date {end} is before start date {start}")
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def input_lines(path: str | Path, s3: S3Config | None = None) -> Iterator[bytes]:
    """`--input`: an NDJSON file, `-` for stdin, a dataset root / raw archive directory, or a dataset
    on S3 (`s3://BUCKET/PREFIX`, reached as `s3` says)."""
    if is_s3_url(str(path)):
        root_url = str(path).removesuffix("/").removesuffix("/raw")
        return _archive_of(storage_at(root_url, s3 or S3Config()), root_url)
    candidate = Path(path)
    if str(path) != "-" and candidate.is_dir():
        root = candidate.parent if candidate.name == "raw" else candidate
        return _archive_of(LocalStorage(root), str(root))
    return file_lines(path)


def _archive_of(storage: StorageBackend, root: str) -> Iterator[bytes]:
    """`archive_lines` of a dataset root; FileNotFoundError, checked now, when it holds no raw archive."""
    files = storage.list_files(RAW_PREFIX)
    if not files:
        inside = root.partition("/raw/")[0] if "/raw/" in f"{root}/" else None
        hint = f"; the dataset root holding it is {inside}" if inside else ""
        raise FileNotFoundError(
            f"no raw archive under {root}/raw{hint}: --input takes an NDJSON file, - (stdin) or a dataset "
            "root (the directory holding raw/)"
        )
    return _segment_lines(storage, files)
