"""Where an output message came from, and the rule that drops re-sent copies.

Every message the feature engine writes (feature rows and dead-letter records)
carries the header ``ff-src: b"<raw partition>:<raw offset>:<index>"``: the raw
message it was computed from and its position among that message's outputs to
the same topic (0 for a feature table unless a large output was split in
chunks; 0, 1, ... for the dead-letter records of one batch).

After a crash the engine re-runs the raw messages whose offsets were not
committed yet and sends, byte for byte, the same feature messages again (the
engine is deterministic and its state is restored to exactly the state those
messages were first computed from). A reader that must see each output once
keeps, per (output topic, output partition, raw partition), the greatest
``(offset, index)`` it has taken, and drops any message at or below it
(`Deduplicator`). Within one output partition the messages of one raw partition
are written by one producer at a time, in raw-offset order, so a re-sent copy
is always at or below what was already taken and a new message always above it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

SOURCE_HEADER = "ff-src"

Headers = list[tuple[str, bytes]]
Source = tuple[int, int, int]  # raw partition, raw offset, index
Scope = tuple[str, int, int]  # output topic, output partition, raw partition


def source_headers(partition: int, offset: int, index: int = 0) -> Headers:
    return [(SOURCE_HEADER, f"{partition}:{offset}:{index}".encode())]


def parse_source(headers: Iterable[tuple[str, bytes]] | None) -> Source | None:
    """The (raw partition, raw offset, index) of an output message, or None without a valid header."""
    for name, value in headers or ():
        if name == SOURCE_HEADER:
            parts = bytes(value).split(b":")
            if len(parts) != 3:
                return None
            try:
                partition, offset, index = (int(part) for part in parts)
            except ValueError:
                return None
            return partition, offset, index
    return None


class Deduplicator:
    """Keeps the first copy of every engine output, whatever order partitions are read in.

    `accept` answers for one consumed message; `watermarks()` / `load()` let a
    reader persist the rule's state with its own progress (e.g. as the metadata
    of its committed offsets), so a copy re-sent across the reader's own restart
    is recognised too. Messages without the header are always accepted.
    """

    def __init__(self) -> None:
        self._last: dict[Scope, tuple[int, int]] = {}

    def accept(self, topic: str, partition: int, headers: Iterable[tuple[str, bytes]] | None) -> bool:
        source = parse_source(headers)
        if source is None:
            return True
        raw_partition, offset, index = source
        scope = (topic, partition, raw_partition)
        position = (offset, index)
        last = self._last.get(scope)
        if last is not None and position <= last:
            return False
        self._last[scope] = position
        return True

    def watermarks(self) -> dict[Scope, tuple[int, int]]:
        return dict(self._last)

    def load(self, watermarks: Mapping[Scope, tuple[int, int]]) -> None:
        for scope, position in watermarks.items():
            last = self._last.get(scope)
            if last is None or position > last:
                self._last[scope] = position
