"""Kafka: topic names and specs, client factories, output lineage (the `ff-src` header, dedupe)."""

from fluxforge_common.kafka.clients import admin_client, consumer, ensure_topics, producer
from fluxforge_common.kafka.lineage import (
    SOURCE_HEADER,
    Deduplicator,
    decode_watermarks,
    encode_watermarks,
    parse_source,
    source_headers,
)
from fluxforge_common.kafka.topics import TopicNames, TopicSpec, topic_specs

__all__ = [
    "SOURCE_HEADER",
    "Deduplicator",
    "TopicNames",
    "TopicSpec",
    "admin_client",
    "consumer",
    "decode_watermarks",
    "encode_watermarks",
    "ensure_topics",
    "parse_source",
    "producer",
    "source_headers",
    "topic_specs",
]
