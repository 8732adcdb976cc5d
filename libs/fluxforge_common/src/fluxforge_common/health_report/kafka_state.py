"""What `fluxforge health` asks the Kafka cluster: brokers, topics, consumer lags, recent dead letters.

Lag is the end offset (`read_committed`) minus the group's committed offset
per partition; a partition the group never committed counts whole, so a
consumer that never ran shows everything it has not read. Recent dead letters
are the messages since a moment, found with the broker's time index
(`offsets_for_times`), so nothing is consumed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CoordinatorLoadInProgressError, CoordinatorNotAvailableError, NotCoordinatorError
from aiokafka.structs import OffsetAndMetadata

from fluxforge_common.config.settings import KafkaConfig
from fluxforge_common.kafka.clients import admin, consumer, start

COORDINATOR_RETRY_S: Final = 0.2


@dataclass(frozen=True)
class KafkaState:
    """`lags`: group -> "topic/partition" -> messages behind (existing topics only)."""

    brokers: int
    topics: set[str]
    lags: dict[str, dict[str, int]]
    deadletter_since: int


async def read_kafka_state(
    cfg: KafkaConfig,
    groups: Mapping[str, Sequence[str]],
    deadletter_topic: str,
    since_ms: int,
    timeout_s: float,
) -> KafkaState:
    """Ask the cluster; raises TimeoutError or a KafkaError/OSError when it does not answer in time."""
    timeout_ms = int(timeout_s * 1000)
    client = admin(cfg, request_timeout_ms=timeout_ms)
    async with asyncio.timeout(timeout_s):
        await start(client, cfg)
        try:
            reader = consumer(cfg, group_id=None, request_timeout_ms=timeout_ms)
            await reader.start()
            try:
                return await _state(client, reader, groups, deadletter_topic, since_ms)
            finally:
                await reader.stop()
        finally:
            await client.close()


async def _state(
    admin: AIOKafkaAdminClient,
    reader: AIOKafkaConsumer,
    groups: Mapping[str, Sequence[str]],
    deadletter_topic: str,
    since_ms: int,
) -> KafkaState:
    cluster = await admin.describe_cluster()
    existing = set(await admin.list_topics())
    # Only existing topics are described: describing a missing one could have the broker create it.
    wanted = sorted(
        ({topic for topics in groups.values() for topic in topics} | {deadletter_topic}) & existing
    )
    described = await admin.describe_topics(wanted) if wanted else []
    partitions = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
    committed = {group: await _committed(admin, group) for group in groups}
    ends = await reader.end_offsets(partitions) if partitions else {}
    lags = {
        group: {
            f"{tp.topic}/{tp.partition}": ends[tp] - max(committed[group][tp].offset, 0)
            if tp in committed[group]
            else ends[tp]
            for tp in partitions
            if tp.topic in topics
        }
        for group, topics in groups.items()
    }
    return KafkaState(
        brokers=len(cluster.get("brokers", [])),
        topics=existing,
        lags=lags,
        deadletter_since=await _since(
            reader, [tp for tp in partitions if tp.topic == deadletter_topic], ends, since_ms
        ),
    )


async def _committed(admin: AIOKafkaAdminClient, group: str) -> dict[TopicPartition, OffsetAndMetadata]:
    """The group's committed offsets; retried while the broker is still electing its coordinator
    (the first request for a group on a new cluster creates the offsets topic)."""
    while True:
        try:
            offsets: dict[TopicPartition, OffsetAndMetadata] = await admin.list_consumer_group_offsets(group)
            return offsets
        except (CoordinatorNotAvailableError, CoordinatorLoadInProgressError, NotCoordinatorError):
            await asyncio.sleep(COORDINATOR_RETRY_S)


async def _since(
    reader: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    ends: Mapping[TopicPartition, int],
    since_ms: int,
) -> int:
    """Messages in `partitions` with a timestamp at or after `since_ms`."""
    if not partitions:
        return 0
    found = await reader.offsets_for_times(dict.fromkeys(partitions, since_ms))
    return sum(ends[tp] - found[tp].offset for tp in partitions if found.get(tp) is not None)
