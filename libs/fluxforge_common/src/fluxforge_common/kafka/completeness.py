"""How complete a feature partition is: the `ff-complete` header (docs/design.md "Kafka transport").

The engine puts on every feature message the grid time up to which every
symbol of the message's raw partition has had its rows sent; `Completeness`
is the engine's per-partition bookkeeping, `parse_complete` what readers
(the sink) take from a message.
"""

from __future__ import annotations

from collections.abc import Iterable

from fluxforge_common.dataset.provenance import PREFIX

COMPLETE_HEADER = "ff-complete"
# Parquet key-value metadata of a sink file: the greatest `ff-complete` among the messages it holds.
COMPLETE_METADATA = f"{PREFIX}complete_ms"


def complete_header(ms: int) -> tuple[str, bytes]:
    return COMPLETE_HEADER, str(ms).encode()


def parse_complete(headers: Iterable[tuple[str, bytes]] | None) -> int | None:
    """The `ff-complete` grid time of a message, or None without a valid header."""
    for name, value in headers or ():
        if name == COMPLETE_HEADER:
            try:
                return int(bytes(value))
            except ValueError:
                return None
    return None


class Completeness:
    """Per raw partition, each symbol's last closed grid point; the partition's is the least of them.

    Symbols the worker has not seen since it took the partition are loaded first
    (`load`, from the state table), so a symbol that stays quiet still holds the
    partition's value back.
    """

    def __init__(self) -> None:
        self._partitions: dict[int, dict[bytes, int]] = {}

    def knows(self, partition: int) -> bool:
        return partition in self._partitions

    def load(self, partition: int, symbols: Iterable[tuple[bytes, int]]) -> None:
        self._partitions[partition] = dict(symbols)

    def update(self, partition: int, key: bytes, complete_ms: int) -> int:
        """Record `key`'s value; returns the partition's."""
        symbols = self._partitions.setdefault(partition, {})
        symbols[key] = complete_ms
        return min(symbols.values())

    def forget(self) -> None:
        """Partitions may move (a rebalance): load them again when next seen."""
        self._partitions.clear()
