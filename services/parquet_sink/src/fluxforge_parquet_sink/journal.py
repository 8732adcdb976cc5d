"""The recovery journal: the files a chunk is about to write, so a crash can be undone.

Before a chunk writes anything, `.sink/pending/<topic>+<partition>.json` is
replaced by `{start, end, files}`; the Kafka commit of `end + 1` settles it.
On assignment, `recover` deletes the files of an entry the committed offset
does not cover: those records will be read again and may be cut differently
(docs/design.md "Delivery guarantees", Commit order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import orjson
from fluxforge_common.dataset.partitioning import SINK_JOURNAL_DIR
from fluxforge_common.storage.base import StorageBackend

from fluxforge_parquet_sink.naming import ChunkName

JOURNAL_DIR: Final = SINK_JOURNAL_DIR


@dataclass(frozen=True, slots=True)
class JournalEntry:
    chunk: ChunkName
    files: list[str]


class Journal:
    """One pending entry per topic-partition, in the dataset's own storage."""

    def __init__(self, storage: StorageBackend) -> None:
        self.storage = storage

    @staticmethod
    def path(topic: str, partition: int) -> str:
        return f"{JOURNAL_DIR}/{topic}+{partition}.json"

    def record(self, chunk: ChunkName, files: list[str]) -> None:
        """Durably note that `files` are about to be written for `chunk` (before any of them is)."""
        entry = {
            "topic": chunk.topic,
            "partition": chunk.partition,
            "start": chunk.start,
            "end": chunk.end,
            "files": files,
        }
        self.storage.write_bytes(self.path(chunk.topic, chunk.partition), orjson.dumps(entry))

    def read(self, topic: str, partition: int) -> JournalEntry | None:
        path = self.path(topic, partition)
        try:
            data = self.storage.read_bytes(path)
        except FileNotFoundError:
            return None
        try:
            obj = orjson.loads(data)
            chunk = ChunkName(obj["topic"], int(obj["partition"]), int(obj["start"]), int(obj["end"]))
            files = [str(f) for f in obj["files"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"recovery journal {path} is unreadable ({exc}); inspect it and delete it"
            ) from exc
        return JournalEntry(chunk, files)

    def recover(self, topic: str, partition: int, committed: int | None) -> list[str]:
        """Delete the files of an uncommitted chunk of this partition; returns the paths deleted.

        `committed` is the group's committed offset (the next record to read),
        None when the group never committed this partition.
        """
        journal = self.path(topic, partition)
        self.storage.discard_incomplete([journal])  # a process killed while writing the entry itself
        entry = self.read(topic, partition)
        if entry is None:
            return []
        if committed is not None and entry.chunk.end < committed:
            return []  # settled: its commit went through
        for path in entry.files:
            self.storage.delete(path)
        self.storage.discard_incomplete(entry.files)
        self.storage.delete(journal)
        return entry.files
