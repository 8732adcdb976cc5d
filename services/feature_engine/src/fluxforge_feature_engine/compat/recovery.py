"""faust-streaming: after a rebalance, stream partitions are resumed only once they are sought.

Faust's `Recovery._resume_streams` and `on_recovery_completed` resume the stream
partitions, then `await consumer.perform_seek()` (seek to the committed
offsets, reset Faust's read offsets). The fetcher, already running for the
changelog, delivers records of the resumed partitions while the seek waits;
the seek then moves the position under them: records were skipped (lost), or
re-fetched and dropped as already read (the partition's commit stalled for
good). And a newly assigned partition without a committed offset (or 0) keeps
the position a dropped fetch left it at, as aiokafka's `seek_to_committed`
leaves it alone: its first records were never processed.

The patch keeps Faust's code: during those two methods, resuming a *stream*
partition waits until right after the seek (changelog partitions resume at
once), and a stream partition with no committed offset is first sought to its
earliest offset (what `auto_offset_reset="earliest"` promises). If no seek
comes, the deferred partitions resume when the method ends, as Faust did.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import Consumer

from fluxforge_feature_engine.compat.guard import Patch

PATCH = Patch(
    name=__name__,
    works_around="faust-streaming's Recovery resuming stream partitions before it seeks them to their "
    "committed offsets after a rebalance (the running fetcher delivered records the seek then skipped, or "
    "made Faust drop as already read, stalling the commit for good), and aiokafka's seek_to_committed "
    "leaving a partition without a committed offset where a dropped fetch had moved it",
    proven_by=(
        "tests/e2e/stack/test_resilience.py::test_kill_9_and_a_broker_restart_lose_and_double_nothing",
        "tests/unit/feature_engine/compat/test_recovery.py",
    ),
)
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

    Faust records a missing or 0 committed offset as None in `Consumer._committed_offset`.
    """
    fresh = sorted(tp for tp in tps if not consumer._committed_offset.get(tp))
    if fresh:
        earliest = await consumer.earliest_offsets(*fresh)
        # `seek_wait`, not `seek`: it runs in the consumer's own thread (aiokafka is not
        # thread-safe; a seek from the app's loop stalled the fetch of other partitions).
        await consumer.seek_wait({tp: earliest[tp] for tp in fresh})


def check() -> None:
    """Refuse (IncompatibleLibraryError) unless the libraries are those the patch was proven on."""
    PATCH.require_versions()
    for name in _METHODS:
        PATCH.require_method("faust-streaming", Recovery, name, ("self", "generation_id"))
    PATCH.require_method("faust-streaming", Recovery, "_is_changelog_tp", ("self", "tp"))
    PATCH.require_instance_attribute("faust-streaming", Recovery, "app")
    PATCH.require_method("faust-streaming", Consumer, "resume_partitions", ("self", "tps"))
    PATCH.require_method("faust-streaming", Consumer, "perform_seek", ("self",))
    PATCH.require_method("faust-streaming", Consumer, "earliest_offsets", ("self", "partitions"))
    PATCH.require_method("faust-streaming", Consumer, "seek_wait", ("self", "partitions"))
    PATCH.require_instance_attribute("faust-streaming", Consumer, "_committed_offset")


def apply() -> None:
    """Check, then install the patch on Faust's `Recovery` (idempotent)."""
    check()
    for name in _METHODS:
        method = getattr(Recovery, name)
        if not getattr(method, _PATCHED, False):
            setattr(Recovery, name, seek_before_resume(method))
