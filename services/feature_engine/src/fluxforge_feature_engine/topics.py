"""The engine's topics, created before Faust starts, with the state changelog matching the raw topic.

The feature and dead-letter topics use the output prefix, so a recomputation
under a new app id writes beside the live pipeline. The changelog has exactly
the raw topic's partition count because Faust keeps table partition `p` in
changelog partition `p` (docs/design.md "Kafka transport").
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace

from fluxforge_common import kafka as clients
from fluxforge_common.config.settings import KafkaConfig
from fluxforge_common.kafka import TopicNames, TopicSpec, ensure_topics, topic_specs

TABLE_NAME = "symbol-state"
READY_TIMEOUT_S = 30.0
CHANGELOG_CONFIGS = {
    "cleanup.policy": "compact",
    # Compaction never touches the active segment; small segments keep recovery reads short.
    "segment.bytes": str(64 << 20),
    "compression.type": "producer",
}


class EngineSetupError(Exception):
    """The topics cannot be used as they are; the message says why and what to do."""


@dataclass(frozen=True)
class EngineTopics:
    raw: str
    outputs: TopicNames  # features + deadletter, under the output prefix
    changelog: str
    partitions: int  # of the raw topic, hence of the changelog


def changelog_topic(app_id: str) -> str:
    """Faust's name for the state table's changelog (`<app id>-<table>-changelog`)."""
    return f"{app_id}-{TABLE_NAME}-changelog"


def output_config(kafka: KafkaConfig, output_prefix: str | None) -> KafkaConfig:
    if output_prefix is None or output_prefix == kafka.topic_prefix:
        return kafka
    return kafka.model_copy(update={"topic_prefix": output_prefix})


async def _partition_counts(kafka: KafkaConfig, names: list[str]) -> dict[str, int]:
    """Partition count of each topic once every partition has a leader (waits up to READY_TIMEOUT_S)."""
    admin = await clients.start(clients.admin(kafka, request_timeout_ms=30_000), kafka)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            counts: dict[str, int] = {}
            for described in await admin.describe_topics(names):
                parts = described["partitions"] if described["error_code"] == 0 else []
                if parts and all(p["leader"] >= 0 for p in parts):
                    counts[described["topic"]] = len(parts)
            if len(counts) == len(names):
                return counts
            if time.monotonic() > deadline:
                missing = sorted(set(names) - set(counts))
                raise EngineSetupError(f"topics {missing} have no leader for every partition after creation")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def prepare_topics(kafka: KafkaConfig, output_prefix: str | None, app_id: str) -> EngineTopics:
    """Create what is missing (raw, features, dead-letter, changelog) and check the partition counts."""
    raw = TopicNames.from_config(kafka).raw
    out_cfg = output_config(kafka, output_prefix)
    outputs = TopicNames.from_config(out_cfg)
    await ensure_topics(kafka, [spec for spec in topic_specs(kafka) if spec.name == raw])
    partitions = (await _partition_counts(kafka, [raw]))[raw]
    # Feature topics made here take the raw topic's count (it may differ from kafka.partitions).
    features = set(outputs.features.values())
    await ensure_topics(
        kafka,
        [
            replace(spec, partitions=partitions) if spec.name in features else spec
            for spec in topic_specs(out_cfg)
            if spec.name != outputs.raw
        ],
    )
    changelog = changelog_topic(app_id)
    await ensure_topics(
        kafka, [TopicSpec(changelog, partitions, kafka.replication_factor, dict(CHANGELOG_CONFIGS))]
    )
    counts = await _partition_counts(kafka, [changelog, *outputs.features.values(), outputs.deadletter])
    if counts[changelog] != partitions:
        raise EngineSetupError(
            f"the state changelog {changelog} has {counts[changelog]} partitions but {raw} has {partitions}: "
            "the raw topic was repartitioned since this app id last ran; start over under a new --app-id"
        )
    unlike = sorted(
        f"{name} ({counts[name]})" for name in outputs.features.values() if counts[name] != partitions
    )
    if unlike:
        raise EngineSetupError(
            f"feature topics {', '.join(unlike)} do not have the {partitions} partitions of {raw}: a feature "
            "partition must hold the symbols of one raw partition, whose completeness its `ff-complete` "
            "header states; recreate them with that count, or use another --output-prefix"
        )
    return EngineTopics(raw=raw, outputs=outputs, changelog=changelog, partitions=partitions)
