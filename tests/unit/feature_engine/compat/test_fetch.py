"""The faust-streaming/aiokafka fix: a fetch takes no records of partitions paused while it waits."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka.consumer.fetcher import Fetcher, FetchResult
from aiokafka.structs import TopicPartition
from faust.transport.consumer import ThreadDelegateConsumer
from fluxforge_feature_engine.compat import fetch
from fluxforge_feature_engine.compat.fetch import ActivePartitions, live_filter

RAW = TopicPartition("raw", 0)
LOG = TopicPartition("app-changelog", 0)


class Records:
    """aiokafka's partition records: an iterator that knows where the next fetch starts."""

    def __init__(self, offsets: range) -> None:
        self._records = iter([SimpleNamespace(offset=offset) for offset in offsets])
        self.next_fetch_offset = offsets.start

    def __iter__(self) -> Records:
        return self

    def __next__(self) -> Any:
        return next(self._records)


def fetched_result(tp: TopicPartition, offsets: range) -> FetchResult:
    state = SimpleNamespace(paused=False, position=offsets.start, consumed_to=lambda offset: None)
    assignment = SimpleNamespace(active=True, state_value=lambda _: state)
    return FetchResult(tp, assignment=assignment, partition_records=Records(offsets), backoff=0)


async def fetch_while_faust_pauses(partitions: Any, live: set[TopicPartition]) -> dict[Any, Any]:
    """aiokafka's real `fetched_records`: it waits; Faust pauses its last active partition; raw records come."""
    loop = asyncio.get_running_loop()
    fetcher: Any = SimpleNamespace(
        _subscriptions=SimpleNamespace(reassignment_in_progress=False, is_assigned=lambda tp: True),
        _records={},
        _closed=False,
        _wait_consume_future=None,
        _fetch_waiters=set(),
        _loop=loop,
    )
    fetcher._notify = lambda future: Fetcher._notify(fetcher, future)
    fetcher._create_fetch_waiter = lambda: Fetcher._create_fetch_waiter(fetcher)
    fetching = asyncio.create_task(Fetcher.fetched_records(fetcher, partitions, timeout=0.5))
    await asyncio.sleep(0.01)
    live.clear()  # the changelog replay ended: Faust pauses the changelog partition
    fetcher._records[RAW] = fetched_result(RAW, range(523, 633))  # the raw partition, still paused
    for waiter in list(fetcher._fetch_waiters):
        waiter.set_result(None)
    got: dict[Any, Any] = await fetching
    return got


def test_aiokafka_takes_an_empty_live_set_for_every_partition() -> None:
    """The race itself: Faust's live set, emptied during the fetch, lets the raw records through."""
    live = {LOG}
    got = asyncio.run(fetch_while_faust_pauses(live, live))
    assert [r.offset for r in got[RAW]] == list(range(523, 633))


def test_the_live_view_takes_nothing_once_the_set_is_empty() -> None:
    live = {LOG}
    assert asyncio.run(fetch_while_faust_pauses(ActivePartitions(live), live)) == {}


def test_the_view_follows_the_live_set_and_is_never_falsy() -> None:
    live = {LOG}
    view = ActivePartitions(live)
    assert view and LOG in view and RAW not in view
    live.clear()
    live.add(RAW)
    assert RAW in view and LOG not in view
    live.clear()
    assert view and RAW not in view


def test_getmany_gets_the_view_and_client_only_gets_none() -> None:
    seen: list[Any] = []

    async def getmany(self: Any, active_partitions: Any, timeout: float) -> dict[Any, Any]:
        seen.append(active_partitions)
        return {}

    wrapped = live_filter(getmany)
    live = {RAW}
    asyncio.run(wrapped(None, live, 1.0))
    asyncio.run(wrapped(None, None, 1.0))
    assert isinstance(seen[0], ActivePartitions) and RAW in seen[0]
    assert seen[1] is None


def test_apply_patches_faust_once() -> None:
    fetch.apply()
    first = ThreadDelegateConsumer._getmany
    fetch.apply()
    assert ThreadDelegateConsumer._getmany is first
    assert getattr(first, "_fluxforge_live_fetch_filter", False)
