"""Per-symbol tick batches: the value of one `fluxforge.raw` message (docs/design.md "Kafka transport").

Faust pays ~150-200 us per event whatever it holds, so the collector groups a
symbol's ticks into one message: a JSON array of the ticks' original bytes, in
arrival order, keyed `"<exchange>:<symbol>"`. A batch is flushed when it holds
`max_ticks` ticks, when adding a tick would take it past `max_bytes` (so a
large `batch_max_ticks` cannot build a message the broker refuses), when its
oldest tick is `linger_s` old, and on shutdown.

The batcher does no I/O itself: it hands finished batches to a `send`
callable, in order. It is meant to be driven by one task: `send` calls are
sequential, so as long as `send` enqueues in call order (aiokafka's producer
does, per partition) a symbol's batches reach Kafka in the order its ticks
arrived. Lingering uses a monotonic clock: when a batch goes out changes only
how ticks are grouped, never what the feature engine computes from them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fluxforge_common.messages.decoding import DEFAULT_MAX_MESSAGE_BYTES

# key, value, number of ticks in the value
SendBatch = Callable[[bytes, bytes, int], Awaitable[None]]

# Uncompressed bound of one value: the largest envelope in its brackets, which leaves room for the
# key and Kafka's headers under a broker's default message.max.bytes (`DEFAULT_MAX_MESSAGE_BYTES`);
# a compressed batch is never larger than its input by more than a few bytes.
DEFAULT_MAX_BATCH_BYTES = DEFAULT_MAX_MESSAGE_BYTES + 2


class _Batch:
    __slots__ = ("raws", "size", "started", "ticks")

    def __init__(self, started: float) -> None:
        self.raws: list[bytes] = []
        self.size = 2  # the enclosing brackets
        self.started = started
        self.ticks = 0  # elements that are ticks (not watermarks)


class Batcher:
    """Groups raw ticks per key and sends each group as `[tick,tick,...]` when it is due."""

    def __init__(
        self,
        send: SendBatch,
        *,
        max_ticks: int,
        linger_s: float,
        max_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_ticks < 1:
            raise ValueError(f"max_ticks must be at least 1, got {max_ticks}")
        if linger_s < 0:
            raise ValueError(f"linger_s must not be negative, got {linger_s}")
        self._send = send
        self.max_ticks = max_ticks
        self.linger_s = linger_s
        self.max_bytes = max_bytes
        self._clock = clock
        # Open batches in the order they were started, hence by age: a flushed key is
        # removed, and its next tick starts a batch at the end.
        self._open: dict[bytes, _Batch] = {}
        self.pending_ticks = 0

    async def add(self, key: bytes, raw: bytes, ticks: int = 1) -> None:
        """Append one element's exact bytes to its key's batch; sends the batch if that fills it.

        `ticks` is 0 for a watermark record: it takes a place in the batch but is no tick.
        """
        batch = self._open.get(key)
        if batch is None:
            batch = self._open[key] = _Batch(self._clock())
        elif batch.size + len(raw) + 1 > self.max_bytes:
            await self._flush(key)
            batch = self._open[key] = _Batch(self._clock())
        batch.raws.append(raw)
        batch.size += len(raw) + 1
        batch.ticks += ticks
        self.pending_ticks += ticks
        if len(batch.raws) >= self.max_ticks:
            await self._flush(key)

    def next_due(self) -> float | None:
        """Clock time at which the oldest open batch has lingered long enough; None when none is open."""
        for batch in self._open.values():
            return batch.started + self.linger_s
        return None

    async def flush_due(self) -> None:
        """Send every batch whose oldest tick is `linger_s` old or older."""
        if not self._open:
            return
        limit = self._clock() - self.linger_s
        while self._open:
            key, batch = next(iter(self._open.items()))
            if batch.started > limit:
                return
            await self._flush(key)

    async def flush_all(self) -> None:
        """Send every open batch, oldest first (shutdown)."""
        while self._open:
            await self._flush(next(iter(self._open)))

    async def _flush(self, key: bytes) -> None:
        batch = self._open.pop(key)
        self.pending_ticks -= batch.ticks
        await self._send(key, b"[" + b",".join(batch.raws) + b"]", batch.ticks)
