"""Where an output message came from (the `ff-src` header), and the rule that drops re-sent copies.

The header and why a per-(topic, partition, raw partition) position is
enough are in docs/design.md "Kafka transport" and "Delivery guarantees".
`encode_positions` / `decode_positions` carry one consumed partition's
positions as Kafka offset-commit metadata, so a reader that restarts still
recognises copies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

SOURCE_HEADER = "ff-src"
POSITIONS_FORMAT = "ff-src/1"  # first token of `encode_positions`

Headers = list[tuple[str, bytes]]
Source = tuple[int, int, int]  # raw partition, raw offset, index
Scope = tuple[str, int, int]  # output topic, output partition, raw partition
Position = tuple[int, int]  # raw offset, index


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

    `accept` answers for one consumed message and takes it; `is_new` / `take`
    are the same two steps apart, for a reader that must act between them (the
    sink closes a chunk before the message that starts the next one is taken).
    `positions()` / `load()` let a reader persist the rule's state with its
    own progress (e.g. as the metadata of its committed offsets), so a copy
    re-sent across the reader's own restart is recognised too. Messages
    without the header are always accepted.
    """

    def __init__(self) -> None:
        self._last: dict[Scope, Position] = {}

    def accept(self, topic: str, partition: int, headers: Iterable[tuple[str, bytes]] | None) -> bool:
        source = parse_source(headers)
        if source is None:
            return True
        if not self.is_new(topic, partition, source):
            return False
        self.take(topic, partition, source)
        return True

    def is_new(self, topic: str, partition: int, source: Source) -> bool:
        """True if `source` lies above everything taken so far from its scope (nothing changes)."""
        last = self._last.get((topic, partition, source[0]))
        return last is None or (source[1], source[2]) > last

    def take(self, topic: str, partition: int, source: Source) -> None:
        """Record `source` as taken (call only after `is_new` said yes)."""
        self._last[(topic, partition, source[0])] = (source[1], source[2])

    def positions(self) -> dict[Scope, Position]:
        return dict(self._last)

    def load(self, positions: Mapping[Scope, Position]) -> None:
        for scope, position in positions.items():
            last = self._last.get(scope)
            if last is None or position > last:
                self._last[scope] = position

    def partition_positions(self, topic: str, partition: int) -> dict[int, Position]:
        """raw partition -> greatest (offset, index) taken, for one consumed partition."""
        return {raw: pos for (t, p, raw), pos in self._last.items() if t == topic and p == partition}

    def load_partition(self, topic: str, partition: int, positions: Mapping[int, Position]) -> None:
        self.load({(topic, partition, raw): pos for raw, pos in positions.items()})


def encode_positions(positions: Mapping[int, Position]) -> str:
    """`ff-src/1 <raw partition>:<offset>:<index>,...` (sorted by raw partition); `ff-src/1` when empty."""
    body = ",".join(f"{raw}:{offset}:{index}" for raw, (offset, index) in sorted(positions.items()))
    return f"{POSITIONS_FORMAT} {body}" if body else POSITIONS_FORMAT


def decode_positions(text: str | None) -> dict[int, Position]:
    """The positions `encode_positions` wrote; {} for None or "" (nothing recorded).

    Raises ValueError for anything else that is not in that format, so a reader
    can tell "no positions yet" from "positions it cannot read".
    """
    if not text:
        return {}
    head, _, body = text.partition(" ")
    if head != POSITIONS_FORMAT:
        raise ValueError(f"not {POSITIONS_FORMAT} positions: {text[:80]!r}")
    marks: dict[int, Position] = {}
    for item in body.split(",") if body else ():
        parts = item.split(":")
        if len(parts) != 3:
            raise ValueError(f"bad position {item[:80]!r} in {text[:80]!r}")
        try:
            raw, offset, index = (int(part) for part in parts)
        except ValueError:
            raise ValueError(f"bad position {item[:80]!r} in {text[:80]!r}") from None
        marks[raw] = (offset, index)
    return marks
