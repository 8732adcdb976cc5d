"""When a chunk is closed: bounds on its records (deterministic) and on idleness (wall clock)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fluxforge_common.config.settings import FluxForgeSettings

MiB = 1 << 20


@dataclass(frozen=True, slots=True)
class FlushPolicy:
    """Bounds of one topic-partition's chunk.

    Data bounds, all measured on the records themselves, so the same records
    always cut into the same chunks (the basis of replaying into the same file
    names): `rows` (feature rows) / `raw_bytes` (uncompressed archive bytes) /
    `deadletter_records`, checked after a message is added; and an event-time
    span (`*_span_ms`, from the rows' `ts`, the ticks' event time, the
    dead-letter records' `logged_at_ms`), checked before a message is added: a
    message reaching `span` past the chunk's first time starts the next chunk.

    `idle_s` is the one wall-clock rule: a chunk that received nothing for that
    long is closed so a quiet topic's last rows still reach the dataset (0 turns
    it off; a graceful shutdown closes every chunk anyway).
    """

    rows: int = 50_000
    span_ms: int = 60_000
    raw_bytes: int = 64 * MiB
    raw_span_ms: int = 3_600_000
    deadletter_records: int = 1_000
    deadletter_span_ms: int = 3_600_000
    idle_s: float = 120.0
    raw_compression: Literal["zstd", "none"] = "zstd"
    row_group_size: int = 65_536
    compression: Literal["zstd", "lz4", "snappy", "none"] = "zstd"  # of the Parquet files
    max_message_bytes: int = MiB

    def __post_init__(self) -> None:
        for name in (
            "rows",
            "span_ms",
            "raw_bytes",
            "raw_span_ms",
            "deadletter_records",
            "deadletter_span_ms",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"flush policy {name} must be positive, got {getattr(self, name)}")
        if self.idle_s < 0:
            raise ValueError(f"idle_s must be >= 0 (0 = off), got {self.idle_s}")

    @classmethod
    def from_settings(
        cls,
        settings: FluxForgeSettings,
        *,
        rows: int | None = None,
        span_s: float | None = None,
        raw_mb: float | None = None,
        raw_span_s: float | None = None,
        deadletter_records: int | None = None,
        idle_s: float | None = None,
    ) -> FlushPolicy:
        """The configured bounds with command-line overrides (None keeps the configured value)."""
        sink, raw_archive, deadletter = settings.sink, settings.raw_archive, settings.deadletter
        span = sink.feature_span_s if span_s is None else span_s
        raw_span = raw_archive.segment_max_age_s if raw_span_s is None else raw_span_s
        return cls(
            rows=settings.parquet.flush_rows if rows is None else rows,
            span_ms=max(1, round(span * 1000)),
            raw_bytes=max(1, round((raw_archive.segment_max_mb if raw_mb is None else raw_mb) * MiB)),
            raw_span_ms=max(1, round(raw_span * 1000)),
            deadletter_records=deadletter.max_records if deadletter_records is None else deadletter_records,
            deadletter_span_ms=deadletter.max_span_s * 1000,
            idle_s=sink.idle_flush_s if idle_s is None else idle_s,
            raw_compression=raw_archive.compression,
            row_group_size=settings.parquet.row_group_size,
            compression=settings.parquet.compression,
            max_message_bytes=settings.messages.max_bytes,
        )
