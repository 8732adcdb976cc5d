"""Kafka: topic names and specs, client factories, output lineage (the `ff-src` header, dedupe),
feature partition completeness (the `ff-complete` header)."""

from fluxforge_common.kafka.clients import consumer, ensure_topics, producer
from fluxforge_common.kafka.completeness import (
    COMPLETE_HEADER,
    COMPLETE_METADATA,
    Completeness,
    complete_header,
    parse_complete,
)
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
    "COMPLETE_HEADER",
    "COMPLETE_METADATA",
    "SOURCE_HEADER",
    "Completeness",
    "Deduplicator",
    "TopicNames",
    "TopicSpec",
    "complete_header",
    "consumer",
    "decode_watermarks",
    "encode_watermarks",
    "ensure_topics",
    "parse_complete",
    "parse_source",
    "producer",
    "source_headers",
    "topic_specs",
]
