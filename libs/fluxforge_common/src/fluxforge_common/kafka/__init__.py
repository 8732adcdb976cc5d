"""Kafka: topic names and specs, secure client factories, output lineage (the `ff-src` header,
dedupe), feature partition completeness (the `ff-complete` header)."""

from fluxforge_common.kafka.clients import admin, consumer, ensure_topics, plain_consumer, producer, start
from fluxforge_common.kafka.completeness import (
    COMPLETE_HEADER,
    COMPLETE_METADATA,
    Completeness,
    complete_header,
    parse_complete,
)
from fluxforge_common.kafka.connection import KafkaAccessError, connection_options, describe, ssl_context
from fluxforge_common.kafka.lineage import (
    SOURCE_HEADER,
    Deduplicator,
    decode_positions,
    encode_positions,
    parse_source,
    source_headers,
)
from fluxforge_common.kafka.topics import TopicNames, TopicSpec, topic_specs

__all__ = [
    "COMPLETE_HEADER",
    "COMPLETE_METADATA",
    "SOURCE_HEADER",
    "Completeness",
    "Deduplicator",
    "KafkaAccessError",
    "TopicNames",
    "TopicSpec",
    "admin",
    "complete_header",
    "connection_options",
    "consumer",
    "decode_positions",
    "describe",
    "encode_positions",
    "ensure_topics",
    "parse_complete",
    "parse_source",
    "plain_consumer",
    "producer",
    "source_headers",
    "ssl_context",
    "start",
    "topic_specs",
]
