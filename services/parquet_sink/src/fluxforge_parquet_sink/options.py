"""What `fluxforge sink` (the sink service's one entry point) accepts, and how it is applied.

A flag overrides its config key (named in its help); an option left at None
keeps the configured value.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fluxforge_common.config.settings import FluxForgeSettings, load_settings
from fluxforge_common.features import TABLES
from fluxforge_common.kafka import KafkaAccessError
from fluxforge_common.logs import LogFormat, configure_logging
from fluxforge_common.storage.space import DISK_FULL_STATUS

from fluxforge_parquet_sink.policy import FlushPolicy
from fluxforge_parquet_sink.runner import KafkaSink, StoppedOnFullDiskError, serve
from fluxforge_parquet_sink.stats import SinkStats

HELP = {
    "config": "YAML config (default: $FLUXFORGE_CONFIG, else config/config.yaml if present).",
    "root": "Dataset root to write (default: storage.root).",
    "group_id": "Kafka consumer group; sink processes with the same group share the partitions "
    "(default: sink.group_id).",
    "instance_id": (
        "Static group membership id (KIP-345), stable per process slot (e.g. the pod name): a restarted "
        "member takes its partitions back at once instead of after the session timeout."
    ),
    "tables": "Feature tables to consume, comma-separated (hf,bars,trades,ticker), 'all' or 'none' "
    "(default: sink.tables).",
    "raw": "Archive the raw topic's accepted ticks to raw/ (default: sink.archive_raw).",
    "deadletter": "Copy the dead-letter topic to deadletter/ (default: sink.write_deadletter).",
    "topic_prefix": "Topic prefix to read (default: kafka.topic_prefix), e.g. a reprocessing pipeline's.",
    "bootstrap": "Kafka bootstrap servers (default: kafka.bootstrap_servers).",
    "flush_rows": "Feature rows per file batch per topic-partition (default: parquet.flush_rows).",
    "flush_seconds": "Event-time span of a feature file batch, by the rows' ts (default: sink.feature_span_s).",
    "raw_max_mb": "Uncompressed MiB of a raw archive batch (default: raw_archive.segment_max_mb).",
    "raw_max_age_seconds": "Event-time span of a raw archive batch (default: raw_archive.segment_max_age_s).",
    "deadletter_max_records": "Dead-letter records per file batch (default: deadletter.max_records).",
    "idle_flush_seconds": "Write a partition's open batch after this many wall-clock seconds without records, "
    "0: never (default: sink.idle_flush_s).",
    "progress_seconds": "Seconds between progress log lines (default: sink.progress_interval_s).",
    "until_caught_up": "Stop (writing and committing everything) once the assigned partitions are read to their end.",
    "fsync": "fsync each file before its offsets are committed; without, faster but a power cut may lose "
    "committed files (default: sink.fsync).",
    "target": "Where to write: local (the root), s3 (storage.s3.url) or local+s3 (default: sink.target).",
    "log_level": "Logging level (DEBUG, INFO, WARNING).",
}


def parse_tables(text: str) -> list[str]:
    """`hf,bars` -> ["hf", "bars"]; `all` -> every table; `none` or empty -> []; ValueError on others."""
    text = text.strip().lower()
    if text == "all":
        return list(TABLES)
    if text in ("", "none"):
        return []
    tables = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [t for t in tables if t not in TABLES]
    if unknown:
        raise ValueError(f"unknown table(s) {', '.join(unknown)}; tables are {', '.join(TABLES)}")
    return list(dict.fromkeys(tables))


@dataclass
class SinkOptions:
    """Every option of the sink command; None means "as configured"."""

    config: Path | None = None
    root: Path | None = None
    group_id: str | None = None
    instance_id: str | None = None
    tables: list[str] | None = None
    raw: bool | None = None
    deadletter: bool | None = None
    topic_prefix: str | None = None
    bootstrap: str | None = None
    flush_rows: int | None = None
    flush_seconds: float | None = None
    raw_max_mb: float | None = None
    raw_max_age_seconds: float | None = None
    deadletter_max_records: int | None = None
    idle_flush_seconds: float | None = None
    progress_seconds: float | None = None
    until_caught_up: bool = False
    fsync: bool | None = None
    target: str | None = None
    log_format: LogFormat | None = None

    def overrides(self) -> dict[str, Any]:
        """The flags that override a config key by the key's own name, as `load_settings` overrides."""
        given = {
            ("kafka", "bootstrap_servers"): self.bootstrap,
            ("kafka", "topic_prefix"): self.topic_prefix,
            ("storage", "root"): self.root,
            ("sink", "group_id"): self.group_id,
            ("sink", "tables"): self.tables,
            ("sink", "archive_raw"): self.raw,
            ("sink", "write_deadletter"): self.deadletter,
            ("sink", "progress_interval_s"): self.progress_seconds,
            ("sink", "fsync"): self.fsync,
            ("sink", "target"): self.target,
            ("logging", "format"): self.log_format,
        }
        overrides: dict[str, dict[str, Any]] = {}
        for (section, key), value in given.items():
            if value is not None:
                overrides.setdefault(section, {})[key] = value
        return overrides

    def settings(self) -> FluxForgeSettings:
        """Load the configuration with these options applied (ConfigError on a bad value)."""
        return load_settings(self.config, self.overrides())

    def policy(self, settings: FluxForgeSettings) -> FlushPolicy:
        return FlushPolicy.from_settings(
            settings,
            rows=self.flush_rows,
            span_s=self.flush_seconds,
            raw_mb=self.raw_max_mb,
            raw_span_s=self.raw_max_age_seconds,
            deadletter_records=self.deadletter_max_records,
            idle_s=self.idle_flush_seconds,
        )

    def build(self, settings: FluxForgeSettings) -> KafkaSink:
        sink = settings.sink
        unused = [
            f"--{name.replace('_', '-')}"
            for name in ("raw_max_mb", "raw_max_age_seconds")
            if getattr(self, name) is not None
        ]
        if unused and not sink.archive_raw:
            raise ValueError(
                f"{' and '.join(unused)} bound raw archive batches: they do nothing without --raw"
            )
        if self.deadletter_max_records is not None and not sink.write_deadletter:
            raise ValueError(
                "--deadletter-max-records bounds dead-letter batches: it does nothing without --deadletter"
            )
        return KafkaSink(
            settings,
            group_id=sink.group_id,
            tables=sink.tables,
            raw=sink.archive_raw,
            deadletter=sink.write_deadletter,
            policy=self.policy(settings),
            progress_s=sink.progress_interval_s,
            until_caught_up=self.until_caught_up,
            consumer_options={} if self.instance_id is None else {"group_instance_id": self.instance_id},
        )


def configure_sink_logging(level: str = "INFO", log_format: LogFormat = "text") -> None:
    """FluxForge's log format; aiokafka's per-poll chatter only from WARNING up."""
    configure_logging(level.upper(), log_format=log_format)
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLogger().level))


def prepare(options: SinkOptions) -> KafkaSink:
    """Settings and sink from the options; ConfigError or ValueError (with the reason) when unusable."""
    settings = options.settings()
    return options.build(settings)


def serve_forever(sink: KafkaSink) -> SinkStats:
    """Serve until SIGTERM/SIGINT (or caught up with `--until-caught-up`), then write, commit and return.

    A broker that refuses the sink's credentials or certificates exits with status 2 and the reason;
    a stop while it waits for disk space, with status 3 (DISK_FULL_STATUS) and what was not written.
    """
    try:
        return asyncio.run(serve(sink))
    except KafkaAccessError as exc:
        logging.getLogger("fluxforge.sink").error("%s", exc)
        raise SystemExit(2) from None
    except StoppedOnFullDiskError as exc:
        logging.getLogger("fluxforge.sink").error("%s", exc)
        raise SystemExit(DISK_FULL_STATUS) from None
