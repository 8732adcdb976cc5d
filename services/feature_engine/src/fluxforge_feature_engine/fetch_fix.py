"""A fix for faust-streaming 0.15.3 on aiokafka 0.14: a fetch must not take records of paused partitions.

Faust fetches with `fetched_records(<active partitions>)` in the consumer's
thread and hands the agent only records of partitions that are still active
when they come back; aiokafka has already moved the position past every record
it returned. Faust passes its live set of active partitions, and checks that
it is non-empty only before the call. aiokafka reads an *empty* set as "every
assigned partition". The set becomes empty during a fetch whenever Faust
pauses its last active partitions, as at the end of every changelog replay
after a rebalance (`Recovery` pauses the changelog partitions while the
stream partitions wait, paused, for their seek). The
pending fetch then returns records of the paused raw partitions; Faust drops
them, and the position has moved past them. If that lands after the seek to
the committed offset (it is the next thing `Recovery` does, so it often does),
nothing repairs it: delivery resumes further on, Faust takes the jump for a
gap of compacted offsets and commits past it, and those raw messages are
never processed. Seen in `test_two_workers_share_the_partitions_through_a_rebalance`
(roughly every other run on 2 cores): a `fetched_records` call made with the
changelog partitions active returned raw offsets 523-632 after the set had
emptied, during the seek to 523; delivery went on at 633 and the commit
jumped to 634.

The fix passes aiokafka a view of the same live set that is never falsy, so a
fetch returns only records of partitions that are active when they are taken.
(Not a snapshot of the set: a fetch begun before a rebalance could then still
take records of a partition paused since, after its seek.)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Set
from typing import Any

from faust.transport.consumer import ThreadDelegateConsumer

_PATCHED = "_fluxforge_live_fetch_filter"
_METHOD = "_getmany"


class ActivePartitions:
    """Faust's live set of active partitions, as a fetch filter in which empty means none."""

    __slots__ = ("_live",)

    def __init__(self, live: Set[Any]) -> None:
        self._live = live

    def __bool__(self) -> bool:
        return True  # aiokafka's `fetched_records` takes a falsy filter for "every partition"

    def __contains__(self, tp: object) -> bool:
        return tp in self._live


def live_filter(
    method: Callable[..., Coroutine[Any, Any, Any]],
) -> Callable[..., Coroutine[Any, Any, Any]]:
    """Wrap `ThreadDelegateConsumer._getmany` so the fetch filter is an `ActivePartitions` view."""

    @functools.wraps(method)
    async def wrapper(self: Any, active_partitions: Set[Any] | None, timeout: float) -> Any:
        partitions = None if active_partitions is None else ActivePartitions(active_partitions)
        return await method(self, partitions, timeout)

    setattr(wrapper, _PATCHED, True)
    return wrapper


def apply() -> None:
    """Install the fix on Faust's thread-delegating consumer (idempotent)."""
    method = getattr(ThreadDelegateConsumer, _METHOD)
    if not getattr(method, _PATCHED, False):
        setattr(ThreadDelegateConsumer, _METHOD, live_filter(method))
