"""Topic names and their creation specs (docs/design.md "Kafka transport").

Keys everywhere are `"<exchange>:<symbol>"`, so one symbol's raw ticks, state
changelog and output rows share a partition number and keep their order.
"""

from __future__ import annotations

from dataclasses import dataclass

from fluxforge_common.config.settings import KafkaConfig
from fluxforge_common.features import TABLES


@dataclass(frozen=True)
class TopicNames:
    raw: str
    deadletter: str
    features: dict[str, str]  # table -> topic, for hf, bars, trades, ticker

    @classmethod
    def from_config(cls, cfg: KafkaConfig) -> TopicNames:
        return cls(
            raw=cfg.topic("raw"),
            deadletter=cfg.topic("deadletter"),
            features={table: cfg.topic(f"features.{table}") for table in TABLES},
        )

    def table_of(self, topic: str) -> str | None:
        """The dataset table a feature topic feeds, or None."""
        return next((table for table, name in self.features.items() if name == topic), None)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]


def topic_specs(cfg: KafkaConfig) -> list[TopicSpec]:
    """Every topic the pipeline uses, with explicit partitions and retention."""
    names = TopicNames.from_config(cfg)
    hour_ms = 3_600_000
    raw = {"retention.ms": str(cfg.raw_retention_hours * hour_ms), "compression.type": "producer"}
    derived = {"retention.ms": str(7 * 24 * hour_ms), "compression.type": "producer"}
    specs = [TopicSpec(names.raw, cfg.partitions, cfg.replication_factor, raw)]
    specs += [
        TopicSpec(topic, cfg.partitions, cfg.replication_factor, derived) for topic in names.features.values()
    ]
    specs.append(TopicSpec(names.deadletter, 1, cfg.replication_factor, derived))
    return specs
