"""Drives `SinkCore` the way the Kafka runner does, with injected crashes (no Kafka)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from fluxforge_common.config import FluxForgeSettings
from fluxforge_common.storage import LocalStorage
from fluxforge_common.storage.base import temp_name
from fluxforge_common.writers import iter_ndjson
from fluxforge_parquet_sink.chunks import Record
from fluxforge_parquet_sink.core import AnyChunk, SinkCore
from fluxforge_parquet_sink.journal import JOURNAL_DIR
from fluxforge_parquet_sink.policy import FlushPolicy

TopicPartitionKey = tuple[str, int]


class KilledError(Exception):
    """Stands for kill -9: nothing after it runs."""


class CrashingStorage(LocalStorage):
    """LocalStorage that 'dies' when opening its `crash_at`-th file, leaving a half-written temporary."""

    def __init__(self, root: Path, crash_at: int | None = None) -> None:
        super().__init__(root, durable=False)
        self.crash_at = crash_at
        self.opens = 0

    @contextmanager
    def open_write(self, path: str) -> Iterator[BinaryIO]:
        self.opens += 1
        if self.crash_at is not None and self.opens >= self.crash_at:
            final = self.local_path(path)
            final.parent.mkdir(parents=True, exist_ok=True)
            final.with_name(temp_name(final.name)).write_bytes(b"half a file")
            raise KilledError(path)
        with super().open_write(path) as f:
            yield f


class Driver:
    """One sink process: assign (recover), feed polls, write closed chunks, commit."""

    def __init__(
        self,
        root: Path,
        settings: FluxForgeSettings,
        policy: FlushPolicy,
        routes: dict[str, str],
        commits: dict[TopicPartitionKey, int],
        *,
        metadata: dict[TopicPartitionKey, str] | None = None,
        crash_at: int | None = None,
        clock: Any = None,
    ) -> None:
        self.storage = CrashingStorage(root, crash_at)
        kwargs = {} if clock is None else {"clock": clock}
        self.core = SinkCore(self.storage, policy, settings.features, routes, **kwargs)
        self.commits = commits  # the group's committed offsets, shared across "processes"
        self.metadata = metadata if metadata is not None else {}  # ... and the metadata committed with them
        self.closed: list[AnyChunk] = []
        self.deleted: list[str] = []

    def poll(self, records: list[Record]) -> None:
        for record in records:
            key = (record.topic, record.partition)
            if not self.core.is_assigned(*key):
                self.deleted += self.core.assign(*key, self.commits.get(key), self.metadata.get(key))
        self.flush(self.core.add(records))

    def flush(self, chunks: list[AnyChunk]) -> None:
        for chunk in chunks:
            self.core.write(chunk)
            self.closed.append(chunk)
            self.commits[(chunk.topic, chunk.partition)] = chunk.end + 1
            self.metadata[(chunk.topic, chunk.partition)] = chunk.positions

    def shutdown(self) -> None:
        self.flush(self.core.close_all())


def polls(records: list[Record], commits: dict[TopicPartitionKey, int], size: int) -> Iterator[list[Record]]:
    """What a consumer resuming at `commits` gets, `size` records per poll, partitions interleaved."""
    todo = [r for r in records if r.offset >= commits.get((r.topic, r.partition), 0)]
    for start in range(0, len(todo), size):
        yield todo[start : start + size]


def run_to_end(
    root: Path,
    settings: FluxForgeSettings,
    policy: FlushPolicy,
    routes: dict[str, str],
    records: list[Record],
    *,
    poll_size: int = 50,
    crashes: tuple[int, ...] = (),
    duplicates: list[int] | None = None,
) -> tuple[dict[TopicPartitionKey, int], list[AnyChunk], list[str]]:
    """Run sink 'processes' until all records are committed; the i-th dies at its crashes[i]-th file.

    `duplicates`, if given, receives each process's count of dropped engine copies."""
    commits: dict[TopicPartitionKey, int] = {}
    metadata: dict[TopicPartitionKey, str] = {}
    closed: list[AnyChunk] = []
    deleted: list[str] = []
    for crash_at in (*crashes, None):
        driver = Driver(root, settings, policy, routes, commits, metadata=metadata, crash_at=crash_at)
        try:
            for batch in polls(records, commits, poll_size):
                driver.poll(batch)
            driver.shutdown()
        except KilledError:
            continue
        finally:
            closed += driver.closed
            deleted += driver.deleted
            if duplicates is not None:
                duplicates.append(driver.core.stats.duplicates)
        break
    return commits, closed, deleted


def all_files(root: Path) -> list[str]:
    """Every file under root, hidden ones included."""
    return sorted(
        str(Path(dirpath, name).relative_to(root)) for dirpath, _, names in os.walk(root) for name in names
    )


def fingerprint(root: Path) -> dict[str, str]:
    """Visible dataset files -> content hash (Parquet bytes are deterministic for the same rows)."""
    storage = LocalStorage(root)
    return {
        path: hashlib.sha256(storage.read_bytes(path)).hexdigest()
        for path in storage.list_files()
        if not path.startswith(JOURNAL_DIR)
    }


def deadletter_lines(root: Path) -> list[bytes]:
    """The dead-letter files' lines, sorted."""
    storage = LocalStorage(root)
    return sorted(line for path in storage.list_files("deadletter") for line in iter_ndjson(storage, path))
