"""The engine refuses topics whose partitions do not line up with the raw topic's, before any work."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from fluxforge_common.config.settings import KafkaConfig
from fluxforge_common.kafka import TopicNames, ensure_topics, topic_specs
from fluxforge_common.kafka.topics import TopicSpec
from fluxforge_feature_engine.topics import EngineSetupError, changelog_topic, prepare_topics

from tests.support.kafka import KafkaTopics

pytestmark = pytest.mark.integration


def setup(kafka_topics: KafkaTopics) -> tuple[KafkaConfig, str]:
    """Settings of 3 partitions under a new prefix, and an app id; every topic they name is deleted after."""
    prefix = f"fft-{uuid.uuid4().hex[:10]}"
    kafka = KafkaConfig(bootstrap_servers=kafka_topics.bootstrap, topic_prefix=prefix, partitions=3)
    app_id = f"{prefix}-app"
    kafka_topics.created += [spec.name for spec in topic_specs(kafka)] + [changelog_topic(app_id)]
    return kafka, app_id


def test_feature_topics_with_another_partition_count_are_refused(kafka_topics: KafkaTopics) -> None:
    kafka, app_id = setup(kafka_topics)
    hf = next(
        spec for spec in topic_specs(kafka) if spec.name == TopicNames.from_config(kafka).features["hf"]
    )
    asyncio.run(ensure_topics(kafka, [TopicSpec(hf.name, 2, hf.replication_factor, hf.configs)]))
    with pytest.raises(
        EngineSetupError, match=rf"feature topics {hf.name} \(2\) do not have the 3 partitions"
    ):
        asyncio.run(prepare_topics(kafka, None, app_id))


def test_a_changelog_of_another_partition_count_is_refused(kafka_topics: KafkaTopics) -> None:
    kafka, app_id = setup(kafka_topics)
    asyncio.run(ensure_topics(kafka, [TopicSpec(changelog_topic(app_id), 6, 1, {})]))
    with pytest.raises(EngineSetupError, match="the raw topic was repartitioned since this app id last ran"):
        asyncio.run(prepare_topics(kafka, None, app_id))


def test_feature_topics_it_creates_take_the_raw_topics_count(kafka_topics: KafkaTopics) -> None:
    """The raw topic made with 2 partitions under a config that now says 3: the engine starts."""
    kafka, app_id = setup(kafka_topics)
    raw = TopicNames.from_config(kafka).raw
    asyncio.run(ensure_topics(kafka, [TopicSpec(raw, 2, 1, {})]))
    topics = asyncio.run(prepare_topics(kafka, None, app_id))
    assert topics.partitions == 2
