"""Kafka: topic names and specs, client factories."""

from fluxforge_common.kafka.clients import consumer, ensure_topics, producer
from fluxforge_common.kafka.topics import TopicNames, TopicSpec, topic_specs

__all__ = ["TopicNames", "TopicSpec", "consumer", "ensure_topics", "producer", "topic_specs"]
