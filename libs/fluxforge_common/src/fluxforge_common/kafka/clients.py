"""Thin factories over aiokafka, so every service talks to Kafka the same way (and as securely as configured)."""

from __future__ import annotations

import contextlib
from typing import Any, Final, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from fluxforge_common.config.settings import KafkaConfig
from fluxforge_common.kafka.connection import KafkaAccessError, access_problem, connection_options
from fluxforge_common.kafka.topics import TopicSpec, topic_specs


class Startable(Protocol):
    async def start(self) -> None: ...


Client = TypeVar("Client", bound=Startable)


# Every producer's batches and requests, the Faust worker's too. aiokafka's default batch, 16 KiB,
# holds a few feature rows and no raw batch of 100 ticks: each one more batch to compress and send.
MAX_BATCH_BYTES: Final = 1 << 20
MAX_REQUEST_BYTES: Final = 8 << 20
LINGER_MS: Final = 5  # how long a batch waits to fill


def producer(cfg: KafkaConfig, *, transactional_id: str | None = None, **overrides: Any) -> AIOKafkaProducer:
    """Idempotent, acks=all producer with the configured compression (zstd/lz4 need cramjam)."""
    options: dict[str, Any] = {
        **connection_options(cfg),
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": None if cfg.compression == "none" else cfg.compression,
        "linger_ms": LINGER_MS,
        "max_batch_size": MAX_BATCH_BYTES,
        "max_request_size": MAX_REQUEST_BYTES,
    }
    if transactional_id is not None:
        options["transactional_id"] = transactional_id
    options.update(overrides)
    return AIOKafkaProducer(**options)


def consumer(cfg: KafkaConfig, *topics: str, group_id: str | None, **overrides: Any) -> AIOKafkaConsumer:
    """Manual-commit consumer that only sees committed transactional output."""
    options: dict[str, Any] = {
        **connection_options(cfg),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "max_partition_fetch_bytes": MAX_REQUEST_BYTES,  # a fetch takes any message a producer sent
        "fetch_max_bytes": 64 << 20,
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


def admin(cfg: KafkaConfig, **overrides: Any) -> AIOKafkaAdminClient:
    """Admin client (topics, consumer group offsets)."""
    return AIOKafkaAdminClient(**{**connection_options(cfg), **overrides})


def plain_consumer(cfg: KafkaConfig, **overrides: Any) -> AIOKafkaConsumer:
    """Consumer without a group, reading what it is assigned (offsets, scans)."""
    return AIOKafkaConsumer(**{**connection_options(cfg), "enable_auto_commit": False, **overrides})


async def start(client: Client, cfg: KafkaConfig) -> Client:
    """`client.start()`, with a refused login or an untrusted certificate raised as `KafkaAccessError`.

    aiokafka reports both as "Unable to bootstrap", like a broker that is down; a service
    retries that, so without this a wrong password would never stop it.
    """
    try:
        await client.start()
    except KafkaConnectionError:
        problem = await access_problem(cfg)
        if problem is None:
            raise
        raise KafkaAccessError(problem) from None
    return client


async def ensure_topics(cfg: KafkaConfig, specs: list[TopicSpec] | None = None) -> list[str]:
    """Create the pipeline's topics that do not exist yet; returns the names created."""
    wanted = specs if specs is not None else topic_specs(cfg)
    client = await start(admin(cfg), cfg)
    try:
        existing = set(await client.list_topics())
        missing = [spec for spec in wanted if spec.name not in existing]
        if missing:
            # Created concurrently by another service: what we wanted.
            with contextlib.suppress(TopicAlreadyExistsError):
                await client.create_topics(
                    [
                        NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=s.configs)
                        for s in missing
                    ]
                )
        return [spec.name for spec in missing]
    finally:
        await client.close()
