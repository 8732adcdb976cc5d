"""Thin factories over aiokafka, so every service talks to Kafka the same way."""

from __future__ import annotations

import contextlib
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from fluxforge_common.config.settings import KafkaConfig
from fluxforge_common.kafka.topics import TopicSpec, topic_specs


def producer(cfg: KafkaConfig, *, transactional_id: str | None = None, **overrides: Any) -> AIOKafkaProducer:
    """Idempotent, acks=all producer with the configured compression (zstd/lz4 need cramjam)."""
    options: dict[str, Any] = {
        "bootstrap_servers": cfg.bootstrap_servers,
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": None if cfg.compression == "none" else cfg.compression,
        "linger_ms": 5,
        "max_batch_size": 1 << 20,
        "max_request_size": 8 << 20,
    }
    if transactional_id is not None:
        options["transactional_id"] = transactional_id
    options.update(overrides)
    return AIOKafkaProducer(**options)


def consumer(cfg: KafkaConfig, *topics: str, group_id: str | None, **overrides: Any) -> AIOKafkaConsumer:
    """Manual-commit consumer that only sees committed transactional output."""
    options: dict[str, Any] = {
        "bootstrap_servers": cfg.bootstrap_servers,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "max_partition_fetch_bytes": 8 << 20,
        "fetch_max_bytes": 64 << 20,
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


def admin_client(cfg: KafkaConfig, **overrides: Any) -> AIOKafkaAdminClient:
    """Admin client of the configured cluster."""
    return AIOKafkaAdminClient(**{"bootstrap_servers": cfg.bootstrap_servers, **overrides})


async def ensure_topics(cfg: KafkaConfig, specs: list[TopicSpec] | None = None) -> list[str]:
    """Create the pipeline's topics that do not exist yet; returns the names created."""
    wanted = specs if specs is not None else topic_specs(cfg)
    admin = AIOKafkaAdminClient(bootstrap_servers=cfg.bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in wanted if spec.name not in existing]
        if missing:
            # Created concurrently by another service: what we wanted.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=s.configs)
                        for s in missing
                    ]
                )
        return [spec.name for spec in missing]
    finally:
        await admin.close()
