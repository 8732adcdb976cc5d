"""faust-streaming on aiokafka: a fetch takes no records of partitions paused while it waits.

Faust fetches with `fetched_records(<its live set of active partitions>)` in the
consumer's thread and drops returned records of partitions no longer active;
aiokafka has already moved the position past them. aiokafka reads an *empty*
set as "every assigned partition", and the live set empties during a fetch
whenever Faust pauses its last active partitions, as at the end of every
changelog replay after a rebalance (the stream partitions wait, paused, for
their seek). The pending fetch then returned records of the paused raw
partitions, Faust dropped them, and, if that landed after the seek, delivery
went on past them and Faust committed over the gap: raw messages never processed.

The patch passes aiokafka a view of the same live set that is never falsy, so
a fetch returns only records of partitions active when they are taken. (Not a
snapshot: a fetch begun before a rebalance could then take records of a
partition paused since, after its seek.)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Set
from typing import Any

from aiokafka.consumer.fetcher import Fetcher
from faust.transport.consumer import ThreadDelegateConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from fluxforge_feature_engine.compat.guard import Patch

PATCH = Patch(
    name=__name__,
    works_around="aiokafka's Fetcher.fetched_records reading the empty set of active partitions Faust "
    "passes when it pauses its last ones mid-fetch as 'every partition', so records of paused raw "
    "partitions were taken, dropped by Faust, and committed past",
    proven_by=(
        "tests/integration/feature_engine/test_feature_engine_kafka.py"
        "::test_two_workers_share_the_partitions_through_a_rebalance",
        "tests/unit/feature_engine/compat/test_fetch.py",
    ),
)
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


def check() -> None:
    """Refuse (IncompatibleLibraryError) unless the libraries are those the patch was proven on."""
    PATCH.require_versions()
    PATCH.require_method(
        "faust-streaming", ThreadDelegateConsumer, _METHOD, ("self", "active_partitions", "timeout")
    )
    PATCH.require_method(
        "faust-streaming",
        AIOKafkaConsumerThread,
        "_fetch_records",
        ("self", "consumer", "active_partitions", "timeout", "max_records"),
    )
    PATCH.require_method(
        "aiokafka", Fetcher, "fetched_records", ("self", "partitions", "timeout", "max_records")
    )


def apply() -> None:
    """Check, then install the patch on Faust's thread-delegating consumer (idempotent)."""
    check()
    method = getattr(ThreadDelegateConsumer, _METHOD)
    if not getattr(method, _PATCHED, False):
        setattr(ThreadDelegateConsumer, _METHOD, live_filter(method))
