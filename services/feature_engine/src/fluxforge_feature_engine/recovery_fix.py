"""A fix for faust-streaming 0.15.3: stream partitions are resumed before they are seeked.

After a rebalance, Faust's `Recovery` (`_resume_streams`, and
`on_recovery_completed` after a changelog restore) does, in this order:
`consumer.resume_partitions(<stream partitions>)`, then
`await consumer.perform_seek()` (seek every assigned partition to its
committed offset, and reset Faust's read offsets). While the seek waits for
the broker, the fetcher - already running, it was reading the changelog - is
free to fetch the resumed stream partitions and hand their records to the
agent. The seek then moves the position underneath those deliveries:

- a newly assigned raw partition without a committed offset was delivered
  from 0 to 66, its prefetched records 67-96 were dropped by the seek, and
  delivery went on at 97: 30 raw messages were never processed (their ticks
  lost for the symbol), and the commit of that partition stalled for good at
  67 (Faust commits only up to the first offset never acknowledged);
- a raw partition with committed offset 215 was delivered 215-232 before the
  seek; the seek sent the fetcher back to 215 but the read offset had moved
  on, so the re-fetched 215-232 were dropped as already read; their acks
  never counted, and the partition's commit stalled at 215 forever (lag never
  drains; data complete).

A second loss has the same cure. While a rebalance assigns partitions, the
fetcher may get records of a newly assigned raw partition for a moment in
which Faust counts it active, then find it paused and drop them silently; the
consumer's position has moved past them. The seek repairs that for a
partition with a committed offset, but aiokafka's `seek_to_committed` leaves
a partition whose committed offset is missing (or 0) where it is: records
0-409 of such a partition were never processed.

Both were caught by `tests/e2e/stack/test_resilience.py` (kill -9 of a worker
plus a rebalance while raw data arrives), with a trace of every delivery and
ack, in roughly one run in four.

The fix keeps Faust's code and changes only what happens around the seek:
during those two methods, resuming *stream* partitions is deferred until right
after the seek (changelog partitions resume at once, as before), and stream
partitions without a committed offset are first sought to their earliest
offset, which is what the consumer's `auto_offset_reset="earliest"` promises
(whatever state already holds is skipped by the stored offsets). A stream
partition is then fetched only from the position the seek set. If the seek
never comes (empty assignment, or another rebalance interrupts it), the
deferred partitions are resumed when the method ends, as Faust did anyway.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from faust.tables.recovery import Recovery

_PATCHED = "_fluxforge_seek_before_resume"
_METHODS = ("_resume_streams", "on_recovery_completed")


def seek_before_resume(
    method: Callable[..., Coroutine[Any, Any, None]],
) -> Callable[..., Coroutine[Any, Any, None]]:
    """Wrap a `Recovery` method so stream partitions are resumed only after `perform_seek`."""

    @functools.wraps(method)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        consumer = self.app.consumer
        resume, seek = consumer.resume_partitions, consumer.perform_seek
        deferred: set[Any] = set()

        def resume_partitions(tps: Iterable[Any]) -> None:
            tps = set(tps)
            streams = {tp for tp in tps if not self._is_changelog_tp(tp)}
            deferred.update(streams)
            if tps - streams:
                resume(tps - streams)

        async def perform_seek() -> None:
            await seek()
            streams = set(deferred)
            deferred.clear()
            if streams:
                await rewind_uncommitted(consumer, streams)
                resume(streams)

        consumer.resume_partitions = resume_partitions
        consumer.perform_seek = perform_seek
        try:
            await method(self, *args, **kwargs)
        finally:
            del consumer.resume_partitions, consumer.perform_seek  # the class's methods again
            if deferred:
                resume(set(deferred))

    setattr(wrapper, _PATCHED, True)
    return wrapper


async def rewind_uncommitted(consumer: Any, tps: set[Any]) -> None:
    """Seek the partitions that have no committed offset (or 0) to their earliest offset.

    aiokafka's `seek_to_committed` seeks only to a positive committed offset; Faust
    records a missing or 0 committed offset as None in `Consumer._committed_offset`.
    """
    fresh = sorted(tp for tp in tps if not consumer._committed_offset.get(tp))
    if fresh:
        earliest = await consumer.earliest_offsets(*fresh)
        # `seek_wait`, not `seek`: it runs in the consumer's own thread (aiokafka is not
        # thread-safe; a seek from the app's loop stalled the fetch of other partitions).
        await consumer.seek_wait({tp: earliest[tp] for tp in fresh})


def apply() -> None:
    """Install the fix on Faust's `Recovery` (idempotent)."""
    for name in _METHODS:
        method = getattr(Recovery, name)
        if not getattr(method, _PATCHED, False):
            setattr(Recovery, name, seek_before_resume(method))
