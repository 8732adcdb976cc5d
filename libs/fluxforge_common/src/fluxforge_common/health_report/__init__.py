"""`fluxforge health`, the operator's report: verdicts on measured facts (`checks`, pure) and what the Kafka cluster says (`kafka_state`)."""

from fluxforge_common.health_report.checks import (
    Check,
    dataset_check,
    deadletter_check,
    disk_check,
    feed_check,
    healthy,
    kafka_check,
    lag_check,
    topics_check,
    unchecked,
)
from fluxforge_common.health_report.kafka_state import KafkaState, read_kafka_state

__all__ = [
    "Check",
    "KafkaState",
    "dataset_check",
    "deadletter_check",
    "disk_check",
    "feed_check",
    "healthy",
    "kafka_check",
    "lag_check",
    "read_kafka_state",
    "topics_check",
    "unchecked",
]
