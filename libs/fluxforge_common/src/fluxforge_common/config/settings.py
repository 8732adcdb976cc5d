"""FluxForgeSettings: the whole configuration, from YAML, environment and flags.

Precedence, highest first: explicit overrides (CLI flags), environment variables
(`FLUXFORGE_<SECTION>__<KEY>`, e.g. `FLUXFORGE_KAFKA__BOOTSTRAP_SERVERS`), the
YAML file (`config/config.yaml` unless `--config`/`FLUXFORGE_CONFIG` names
another), then defaults. A wrong value fails at start with its key, the value
given and what is allowed (`ConfigError`).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from fluxforge_common.config.credentials import credentials_refused, is_credentials_error
from fluxforge_common.config.kafka_connection import KafkaConnectionConfig
from fluxforge_common.config.renamed import move_renamed_keys
from fluxforge_common.config.state import StateConfig
from fluxforge_common.dataset.partitioning import PARQUET_TABLES, Channel
from fluxforge_common.messages.decoding import DEFAULT_MAX_MESSAGE_BYTES
from fluxforge_common.simulator.config import SimulatorConfig
from fluxforge_common.storage.s3url import parse_s3_url

DEFAULT_CONFIG_PATH = Path("config/config.yaml")
# What a topic prefix or an application id (a topic name's first part) may be.
NAME_PATTERN = r"^[A-Za-z0-9._-]{1,100}$"
ENV_PREFIX = "FLUXFORGE_"
# The YAML file's mapping of the settings being loaded: the lowest source of pydantic-settings.
_yaml_values: ContextVar[dict[str, Any] | None] = ContextVar("fluxforge_yaml_values", default=None)


_MERGE_TAG = "tag:yaml.org,2002:merge"


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML keeps the last of two equal keys in a mapping, silently dropping the first section or
    value given; this loader refuses them instead."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:  # `<<:` and the keys that override what it merges are fine
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # SafeLoader refuses such a key itself
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _metrics_port(service: str, standard: int) -> Any:
    """The `metrics_port` setting of a service: where it serves /metrics, /healthz and /readyz."""
    return Field(
        default=None,
        ge=0,
        le=65535,
        description=f"Serve {service}'s Prometheus metrics, /healthz and /readyz on this port "
        f"(none: off; {standard} in the deploy files; 0: any free port).",
    )


def _stop_deadline(graceful_stop: str) -> Any:
    """The `stop_deadline_s` setting of one mode: how long its graceful stop (`fluxforge_common.stopping`) may take."""
    return Field(
        default=25.0,
        gt=0,
        description=f"Seconds after the first SIGTERM/SIGINT within which {graceful_stop}; past them (or at "
        "a second signal) the process exits at once, keeping every file already written.",
    )


class ExchangeConfig(BaseModel):
    """One exchange a collector records (ccxt id as the key in `exchanges`)."""

    model_config = ConfigDict(extra="forbid")

    symbols: list[str] = Field(min_length=1, description="ccxt unified symbols, e.g. BTC/USDT.")
    channels: list[Channel] = Field(
        default=["book", "trade", "ticker"],
        min_length=1,
        description="Channels recorded: book, trade, ticker.",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="ccxt exchange options.")
    urls: dict[str, Any] = Field(default_factory=dict, description="ccxt URL overrides (e.g. an emulator).")
    symbols_per_watch: int = Field(
        default=50,
        ge=1,
        le=200,
        description="Symbols per multi-symbol watch call (one subscription, one connection on Binance).",
    )
    stall_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="A connection with no frame at all (data or the exchange's pings) for this long is "
        "stalled: it is dropped and its subscriptions renewed.",
    )
    reconnect_initial_s: float = Field(default=0.5, gt=0, description="First reconnect delay (then doubled).")
    reconnect_max_s: float = Field(default=30.0, gt=0, description="Longest reconnect delay.")
    split_after_failures: int = Field(
        default=3,
        ge=1,
        description="Failures of a multi-symbol watch within 120 s (other than disconnects and gaps) after "
        "which its symbols are watched one by one, so a failing symbol cannot hold the others back.",
    )

    @field_validator("symbols")
    @classmethod
    def _unified(cls, value: list[str]) -> list[str]:
        for symbol in value:
            if "/" not in symbol:
                raise ValueError(f"{symbol!r} is not a ccxt unified symbol like 'BTC/USDT'")
        return value

    @field_validator("options", "urls")
    @classmethod
    def _no_credentials(cls, value: dict[str, Any]) -> dict[str, Any]:
        found = sorted(_credential_keys(value))
        if found:
            raise credentials_refused(
                found,
                "set FLUXFORGE_<EXCHANGE>_API_KEY / _SECRET / _PASSWORD or FLUXFORGE_<EXCHANGE>_CREDENTIALS_FILE",
            )
        return value


# ccxt's credential settings; none may come from the YAML file (keys come from the environment or secret files only).
CREDENTIAL_KEYS = frozenset(
    {"apikey", "secret", "password", "uid", "login", "privatekey", "walletaddress", "token", "twofa"}
)


def _credential_keys(value: object) -> set[str]:
    """Keys anywhere in a nested mapping that name a credential (case-insensitive, `_`/`-` ignored)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if str(key).lower().replace("_", "").replace("-", "") in CREDENTIAL_KEYS:
                found.add(str(key))
            found |= _credential_keys(item)
    elif isinstance(value, list):
        for item in value:
            found |= _credential_keys(item)
    return found


class KafkaConfig(KafkaConnectionConfig):
    """The Kafka transport: how to reach the brokers (`KafkaConnectionConfig`), the topics, and how raw ticks travel in them."""

    model_config = ConfigDict(extra="forbid")
    topic_prefix: str = Field(
        default="fluxforge",
        pattern=NAME_PATTERN,
        description="Topics are <prefix>.raw, <prefix>.features.<table>, <prefix>.deadletter.",
    )
    partitions: int = Field(
        default=6, ge=1, le=1000, description="Partitions of the raw and feature topics FluxForge creates."
    )
    replication_factor: int = Field(
        default=1, ge=1, le=10, description="Replicas of every topic FluxForge creates."
    )
    raw_retention_hours: int = Field(default=72, ge=1, description="Retention of the raw topic, in hours.")
    compression: Literal["zstd", "lz4", "gzip", "none"] = Field(
        default="zstd", description="Compression of what the collector and the feature engine produce."
    )
    batch_max_ticks: int = Field(
        default=100, ge=1, le=100_000, description="Ticks of one symbol per raw topic message."
    )
    batch_linger_ms: int = Field(
        default=50,
        ge=0,
        le=60_000,
        description="A raw topic message is sent when its oldest tick has waited this many milliseconds.",
    )

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}.{name}"


class S3Config(BaseModel):
    """How FluxForge reaches S3 or an S3-compatible store, and where the dataset's remote copy lives.

    Credentials never come from here: boto3's standard chain supplies them (`AWS_ACCESS_KEY_ID`,
    `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, a profile, an instance or pod role).
    """

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        default=None,
        description="s3://BUCKET/PREFIX of the dataset's remote copy: the default remote of `fluxforge sync` "
        "and of the s3_sync service.",
    )
    endpoint_url: str | None = Field(
        default=None,
        description="Endpoint of an S3-compatible server (none: $AWS_ENDPOINT_URL, else AWS itself).",
    )
    region: str | None = Field(default=None, description="Region (none: $AWS_REGION or the profile's).")
    profile: str | None = Field(default=None, description="AWS profile (none: $AWS_PROFILE or default).")
    addressing_style: Literal["path", "virtual", "auto"] = Field(
        default="path", description="Bucket in the path (S3-compatible servers) or in the host name."
    )
    max_pool_connections: int = Field(default=16, ge=1, le=512, description="HTTP connections kept open.")
    max_attempts: int = Field(default=5, ge=1, le=20, description="Attempts per request (retries + 1).")
    retry_mode: Literal["standard", "adaptive", "legacy"] = Field(
        default="standard", description="botocore's retry mode."
    )
    connect_timeout_s: float = Field(default=10.0, gt=0, description="Seconds to open a connection.")
    read_timeout_s: float = Field(default=60.0, gt=0, description="Seconds to wait for a response.")
    multipart_threshold_mb: int = Field(
        default=16, ge=5, le=5120, description="Files from this size (MiB) up are sent as multipart uploads."
    )
    multipart_chunk_mb: int = Field(
        default=16, ge=5, le=5120, description="Part size (MiB) of a multipart upload."
    )
    stale_upload_hours: float = Field(
        default=24.0,
        gt=0,
        description="Unfinished multipart uploads under the prefix older than this are aborted (their "
        "writer is gone).",
    )
    request_checksum_calculation: Literal["when_required", "when_supported"] = Field(
        default="when_required",
        description="When botocore adds its own integrity checksums to requests. FluxForge sends "
        "Content-MD5 and checks the ETag itself; `when_supported` is AWS's default, which many "
        "S3-compatible servers reject.",
    )
    response_checksum_validation: Literal["when_required", "when_supported"] = Field(
        default="when_required", description="When botocore checks the checksums of responses."
    )

    @model_validator(mode="before")
    @classmethod
    def _refuse_secrets_and_old_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            secret_keys = sorted(k for k in data if "key" in str(k).lower() or "secret" in str(k).lower()
                                 or "token" in str(k).lower() or "password" in str(k).lower())  # fmt: skip
            if secret_keys:
                raise credentials_refused(
                    secret_keys,
                    "give them as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN), a "
                    "profile (storage.s3.profile) or an instance role",
                )
            # botocore prints its endpoint in errors, and the environment's when none is set here.
            endpoints = [("storage.s3.endpoint_url", data.get("endpoint_url"))]
            if data.get("endpoint_url") is None:
                endpoints += [
                    (name, os.environ.get(name)) for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")
                ]
            for name, endpoint in endpoints:
                if isinstance(endpoint, str) and "@" in urlsplit(endpoint).netloc:
                    raise credentials_refused(
                        [f"user:password@ in {name}"],
                        "give the endpoint without them, and the keys as AWS_ACCESS_KEY_ID / "
                        "AWS_SECRET_ACCESS_KEY",
                    )
            old = [k for k in ("bucket", "prefix") if k in data]
            if old:
                raise ValueError(
                    f"storage.s3.{' and '.join(old)}: give the location as storage.s3.url: s3://BUCKET/PREFIX"
                )
        return data

    @field_validator("url")
    @classmethod
    def _s3_url(cls, value: str | None) -> str | None:
        return None if value is None else str(parse_s3_url(value))

    @model_validator(mode="after")
    def _chunk_within_threshold(self) -> S3Config:
        if self.multipart_chunk_mb > self.multipart_threshold_mb:
            raise ValueError(
                f"multipart_chunk_mb ({self.multipart_chunk_mb}) must not exceed multipart_threshold_mb "
                f"({self.multipart_threshold_mb})"
            )
        return self


class CompactionConfig(BaseModel):
    """`fluxforge compact`: merging the small files of closed partitions into few large ones."""

    model_config = ConfigDict(extra="forbid")

    target_file_mb: int = Field(
        default=128, ge=1, le=4096, description="Size (MiB, compressed) a merged file is cut at."
    )
    delete_grace_s: float = Field(
        default=30.0,
        ge=0,
        description="Seconds between switching a partition to its merged files and deleting the files they "
        "replaced: a read planned just before the switch still finds its files.",
    )


class SyncConfig(BaseModel):
    """`fluxforge sync` and the s3_sync service: copying the dataset between a local root and S3."""

    model_config = ConfigDict(extra="forbid")

    concurrency: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Files transferred at once (at most storage.s3.max_pool_connections).",
    )
    progress_interval_s: float = Field(default=1.0, gt=0, description="Seconds between progress lines.")
    metrics_port: int | None = _metrics_port("s3_sync (with --interval)", 9104)
    stop_deadline_s: float = _stop_deadline("sync finishes the transfers under way and starts no other")


class StorageConfig(BaseModel):
    """Where the dataset lives, and how much of its disk to leave free."""

    model_config = ConfigDict(extra="forbid")

    root: Path = Field(default=Path("data"), description="Local dataset root.")
    min_free_mb: int = Field(
        default=1024,
        ge=0,
        description="Free space (MiB) to leave on the root's filesystem: below it `fluxforge run` stops "
        "cleanly and the sink pauses until space returns (0: off, write until the disk is full).",
    )
    s3: S3Config = Field(
        default_factory=S3Config, description="S3 access and the dataset's remote copy (see S3Config)."
    )

    @field_validator("root", mode="before")
    @classmethod
    def _local(cls, value: object) -> object:
        if isinstance(value, str | Path) and str(value).startswith("s3:/"):
            raise ValueError(
                "is an S3 URL, but the root is a local directory: the dataset's S3 copy is storage.s3.url "
                "(`fluxforge sync`; the sink writes there too with sink.target)"
            )
        return value


class MessagesConfig(BaseModel):
    """Raw tick messages, as every reader decodes them: collector, feature engine, sink, embedded run."""

    model_config = ConfigDict(extra="forbid")

    max_bytes: int = Field(
        default=DEFAULT_MAX_MESSAGE_BYTES,
        ge=1024,
        le=DEFAULT_MAX_MESSAGE_BYTES,
        description="Largest raw tick envelope (one JSON object), in bytes, that any reader accepts; "
        "a larger one is dead-lettered. At most the default (1 MiB less 1 KiB): a raw topic message "
        "carries a whole envelope, and Kafka's brokers refuse larger messages by default.",
    )


class RawArchiveConfig(BaseModel):
    """The raw archive's files (`raw/`), as the embedded run and the sink write them."""

    model_config = ConfigDict(extra="forbid")

    compression: Literal["zstd", "none"] = Field(
        default="zstd", description="Compression of raw archive files."
    )
    segment_max_mb: int = Field(
        default=64,
        ge=1,
        le=4096,
        description="A raw archive file is closed before its uncompressed lines would pass this many MiB.",
    )
    segment_max_age_s: int = Field(
        default=3600,
        ge=1,
        description="A raw archive file is closed when a tick's event time is this many seconds past "
        "its first tick's.",
    )
    sync_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=3600,
        description="Wall-clock seconds between the moments `fluxforge run` writes the ticks received "
        "into the open raw archive files and fsyncs them: the most a crash can lose of them.",
    )


class ParquetConfig(BaseModel):
    """The feature tables' Parquet files, as the embedded run and the sink write them."""

    model_config = ConfigDict(extra="forbid")

    flush_rows: int = Field(
        default=50_000,
        ge=1,
        description="Feature rows a writer buffers before writing them as files (the embedded run: per "
        "table; the sink: per topic-partition).",
    )
    row_group_size: int = Field(default=65_536, ge=1_000, description="Rows per Parquet row group.")
    compression: Literal["zstd", "lz4", "snappy", "none"] = Field(
        default="zstd",
        description="Codec of the Parquet files. zstd makes large files smallest; with it, files "
        "whose columns average under 2 KiB (the sink's files of a few dozen rows) are lz4, as small "
        "and ~10x cheaper (README 'Performance').",
    )


class DeadLetterConfig(BaseModel):
    """Files of dead-lettered messages (`deadletter/`)."""

    model_config = ConfigDict(extra="forbid")

    max_records: int = Field(
        default=1_000, ge=1, description="Records per dead-letter file (the embedded run and the sink)."
    )
    max_span_s: int = Field(
        default=3600,
        ge=1,
        description="The sink closes a dead-letter file when a record's logged_at_ms is this many seconds "
        "past its first record's.",
    )


class EmbeddedConfig(BaseModel):
    """The embedded pipeline of `fluxforge run` and `fluxforge reprocess` (one process, no Kafka)."""

    model_config = ConfigDict(extra="forbid")

    flush_interval_s: float = Field(
        default=60.0,
        gt=0,
        description="Wall-clock seconds after which buffered feature rows and dead letters are written "
        "as files (checked every 16 input lines, and every second the input is silent), so a long or "
        "live run's rows appear while it runs.",
    )
    stop_deadline_s: float = _stop_deadline("the run writes what it processed and seals the raw archive")


class SinkConfig(BaseModel):
    """The Kafka sink service (`fluxforge sink`); its flags override these."""

    model_config = ConfigDict(extra="forbid")

    group_id: str = Field(
        default="fluxforge-sink",
        min_length=1,
        description="Kafka consumer group; sink processes of one group share the partitions.",
    )
    tables: list[str] = Field(
        default_factory=lambda: list(PARQUET_TABLES),
        description="Feature tables to consume (hf, bars, trades, ticker, ibars; [] for none). Unset, or "
        "every table listed (--tables all): the tables the features section fills (ibars only when "
        "features.ibars configures bars).",
    )
    archive_raw: bool = Field(default=True, description="Archive the raw topic's accepted ticks to raw/.")
    write_deadletter: bool = Field(default=True, description="Copy the dead-letter topic to deadletter/.")
    feature_span_s: float = Field(
        default=60.0,
        gt=0,
        description="Event-time span, by the rows' ts, of one batch of feature files per topic-partition.",
    )
    idle_flush_s: float = Field(
        default=120.0,
        ge=0,
        description="Wall-clock seconds without records after which a partition's open batches are "
        "written (0: never).",
    )
    progress_interval_s: float = Field(default=10.0, gt=0, description="Seconds between progress log lines.")
    fsync: bool = Field(
        default=True,
        description="fsync each file before its offsets are committed (off: faster, but a power cut may "
        "lose committed files).",
    )
    fsync_scope: Literal["files", "filesystem"] = Field(
        default="files",
        description="How a batch of files is made durable: files (fsync each file and directory, "
        "concurrently) or filesystem (one syncfs of the whole filesystem, Linux 5.8+: fewer disk waits, "
        "but it also waits for every other writer's data there; for a root on a volume of its own).",
    )
    target: Literal["local", "s3", "local+s3"] = Field(
        default="local",
        description="Where the sink writes the dataset: storage.root, storage.s3.url, or both (a chunk's "
        "offsets are committed once its files are verified on every target).",
    )
    stop_deadline_s: float = _stop_deadline("the sink writes and commits what it holds")
    metrics_port: int | None = _metrics_port("the sink", 9103)

    @model_validator(mode="after")
    def _scope_has_local_fsyncs(self) -> SinkConfig:
        if self.fsync_scope == "filesystem" and (not self.fsync or self.target == "s3"):
            why = "sink.fsync is off" if not self.fsync else "sink.target 's3' writes no local files"
            raise ValueError(f"sink.fsync_scope 'filesystem' does nothing: {why}")
        return self

    @field_validator("tables")
    @classmethod
    def _known_tables(cls, value: list[str]) -> list[str]:
        unknown = [table for table in value if table not in PARQUET_TABLES]
        if unknown:
            raise ValueError(f"unknown table(s) {', '.join(unknown)}; tables are {', '.join(PARQUET_TABLES)}")
        return list(dict.fromkeys(value))


class EngineConfig(BaseModel):
    """The feature-engine workers (`fluxforge engine`); their flags override these."""

    model_config = ConfigDict(extra="forbid")

    app_id: str = Field(
        default="fluxforge-features",
        pattern=NAME_PATTERN,
        description="Faust application id: the Kafka consumer group and the state changelog "
        "(<app_id>-symbol-state-changelog). A new id starts from the beginning of the raw topic with "
        "empty state.",
    )
    commit_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Seconds between offset commits: bounds how much input a restart re-reads.",
    )
    stop_deadline_s: float = _stop_deadline("a worker flushes, commits and leaves its group")
    metrics_port: int | None = _metrics_port("a worker", 9102)


class CollectorConfig(BaseModel):
    """The collector's spool (batches wait there for Kafka) and its metrics endpoint."""

    model_config = ConfigDict(extra="forbid")

    spool_dir: Path | None = Field(
        default=None,
        description="Spool directory, one per collector (default: <storage.root>/spool/<source>).",
    )
    spool_max_mb: int = Field(
        default=1024, ge=1, description="Disk the spool may use; past it the collector stops with an error."
    )
    spool_segment_mb: int = Field(default=64, ge=1, le=4096, description="Size of one spool file.")
    send_timeout_s: float = Field(
        default=30.0, gt=0, description="A send Kafka has not acknowledged by then counts as an outage."
    )
    stop_drain_timeout_s: float = Field(
        default=15.0,
        ge=0,
        description="On SIGTERM, how long to wait for Kafka to take the spool; the rest stays spooled.",
    )
    stop_deadline_s: float = _stop_deadline(
        "the collector spools what it read and hands the spool to Kafka (collector.stop_drain_timeout_s)"
    )
    metrics_port: int | None = _metrics_port("the collector", 9101)
    watermark_quiet_s: float | None = Field(
        default=None,
        ge=0,
        description="Publish a watermark for a symbol that had no tick for this long (wall clock, checked "
        "as often), so its quiet intervals close (default: features.hf_emit_interval; 0: never). Live "
        'and paced sources only: a recorded input read unpaced gets none (docs/design.md "Watermarks").',
    )
    final_watermark: bool = Field(
        default=True,
        description="When a finite input ends (a file, an archive, --events/--duration), end each symbol "
        "with a watermark so its last interval is emitted; false when a later run goes on with the same "
        "symbols on the same topic.",
    )


class MetricsConfig(BaseModel):
    """The HTTP endpoint every service serves on its `metrics_port` (docs/metrics.md)."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address the metrics/health endpoint binds (0.0.0.0 in a container, for probes "
        "and Prometheus).",
    )
    heartbeat_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="/healthz fails once the service's main loop has not turned for this long.",
    )


class LoggingConfig(BaseModel):
    """How services and commands write their log (stderr)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["text", "json"] = Field(
        default="text",
        description="text: one readable line per record; json: one JSON object per line, for log "
        "collectors in containers (`--log-format` overrides).",
    )


class HealthConfig(BaseModel):
    """What `fluxforge health` calls healthy: its thresholds, and which feeds it expects."""

    model_config = ConfigDict(extra="forbid")

    feeds: Literal["exchanges", "simulator"] = Field(
        default="exchanges",
        description="Where the recorded feeds are listed: `exchanges` (collectors on live exchanges) or "
        "`simulator` (collectors on the simulated market); each symbol there must have fresh HF rows.",
    )
    feed_max_age_s: float = Field(
        default=300.0,
        gt=0,
        description="A feed whose newest HF row in the dataset is older than this (wall clock) is stale; "
        "the sink writes a partition's rows at least every sink.feature_span_s of event time.",
    )
    max_lag_messages: int = Field(
        default=10_000,
        ge=0,
        description="Messages a consumer group (engine, sink) may be behind its topics before it is "
        "failing to keep up.",
    )
    min_free_mb: int = Field(
        default=2048,
        ge=0,
        description="Free space (MiB) the data root's and the spool's filesystems must keep; below "
        "storage.min_free_mb writers stop, so this warns first.",
    )
    deadletter_window_s: float = Field(
        default=300.0, gt=0, description="Seconds of the dead-letter topic counted for its recent rate."
    )
    max_deadletter_per_min: float = Field(
        default=60.0,
        ge=0,
        description="Dead-letter messages per minute over deadletter_window_s above which input is "
        "being rejected at an unhealthy rate.",
    )
    kafka_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="How long to wait for the Kafka cluster before calling it unreachable.",
    )


class FluxForgeSettings(BaseSettings):
    """Everything a FluxForge process can be configured with."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid")

    features: StateConfig = Field(default_factory=StateConfig)
    exchanges: dict[str, ExchangeConfig] = Field(
        default_factory=lambda: {
            "binanceus": ExchangeConfig(symbols=["BTC/USDT", "ETH/USDT", "SOL/USDT"]),
        }
    )
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    messages: MessagesConfig = Field(default_factory=MessagesConfig)
    raw_archive: RawArchiveConfig = Field(default_factory=RawArchiveConfig)
    parquet: ParquetConfig = Field(default_factory=ParquetConfig)
    deadletter: DeadLetterConfig = Field(default_factory=DeadLetterConfig)
    embedded: EmbeddedConfig = Field(default_factory=EmbeddedConfig)
    collector: CollectorConfig = Field(default_factory=CollectorConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    sink: SinkConfig = Field(default_factory=SinkConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    compaction: CompactionConfig = Field(default_factory=CompactionConfig)
    simulator: SimulatorConfig = Field(default_factory=SimulatorConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)

    @model_validator(mode="after")
    def _sink_target_has_a_location(self) -> FluxForgeSettings:
        if "s3" in self.sink.target and self.storage.s3.url is None:
            raise ValueError(
                f"sink.target {self.sink.target!r} writes to S3: give the location as storage.s3.url: "
                "s3://BUCKET/PREFIX"
            )
        return self

    @model_validator(mode="after")
    def _sync_fits_pool(self) -> FluxForgeSettings:
        if self.sync.concurrency > self.storage.s3.max_pool_connections:
            raise ValueError(
                f"sync.concurrency ({self.sync.concurrency}) exceeds storage.s3.max_pool_connections "
                f"({self.storage.s3.max_pool_connections}): transfers would wait for connections; raise the pool"
            )
        return self

    @model_validator(mode="after")
    def _sink_tables_are_filled(self) -> FluxForgeSettings:
        sink, unfilled = self.sink, self.features.unfilled_tables
        if "tables" not in sink.model_fields_set or set(sink.tables) >= set(PARQUET_TABLES):
            sink.tables = [t for t in PARQUET_TABLES if t not in unfilled]
        elif idle := [t for t in sink.tables if t in unfilled]:
            raise ValueError(
                f"sink.tables lists {', '.join(idle)}, which the features section gives no rows: configure "
                'features.ibars (docs/features.md "ibars/") or leave the table out'
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        moved, conflicts = move_renamed_keys(data, _same_setting)
        if conflicts:
            raise ConfigError("\n".join(["conflicting configuration:", *conflicts]))
        return moved

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_values = _yaml_values.get()
        if yaml_values is None:
            return init_settings, env_settings
        return init_settings, env_settings, InitSettingsSource(settings_cls, init_kwargs=yaml_values)


class ConfigError(Exception):
    """A configuration that cannot be used; the message lists every bad key."""


def _same_setting(key: str, a: Any, b: Any) -> bool:
    """Whether two values given for one setting (e.g. "300" from the environment, 300 from YAML) agree."""
    section, name = key.split(".")
    model = FluxForgeSettings.model_fields[section].annotation
    assert isinstance(model, type) and issubclass(model, BaseModel)
    try:
        return bool(getattr(model(**{name: a}), name) == getattr(model(**{name: b}), name))
    except ValidationError:
        return bool(a == b)


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        given = error.get("input")
        if is_credentials_error(error["msg"]):
            given = "<redacted>"  # never echo a secret someone put in the file
        if isinstance(given, dict):  # a rule across a section's keys: the message names them
            lines.append(f"  {key}: {error['msg']}")
        else:
            lines.append(f"  {key} = {given!r}: {error['msg']}")
    lines.append("See config/config.examples.yaml for every key, its default and allowed values.")
    return "\n".join(lines)


def config_path(path: Path | str | None = None) -> Path | None:
    """The YAML file to read: the argument, else $FLUXFORGE_CONFIG, else config/config.yaml if present."""
    if path is not None:
        return Path(path)
    env = os.environ.get("FLUXFORGE_CONFIG")
    if env:
        return Path(env)
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None


def load_settings(
    path: Path | str | None = None, overrides: dict[str, Any] | None = None
) -> FluxForgeSettings:
    """Read YAML, apply environment and `overrides` (nested dicts), validate; raise ConfigError."""
    file = config_path(path)
    loaded = None if file is None else _read_yaml(file)
    _refuse_unknown_env_sections()
    token = _yaml_values.set(loaded)
    try:
        return FluxForgeSettings(**(overrides or {}))
    except ValidationError as exc:
        source = f"{file}" if file else "defaults"
        raise ConfigError(_format_errors(exc, f"{source} + environment + flags")) from exc
    finally:
        _yaml_values.reset(token)


def _read_yaml(file: Path) -> dict[str, Any]:
    """The config file's sections; ConfigError when it cannot be read or is not a YAML mapping."""
    if not file.exists():
        raise ConfigError(
            f"config file {file} does not exist (copy config/config.examples.yaml to start one)"
        )
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else f"not UTF-8 text ({exc.reason})"
        raise ConfigError(f"config file {file} cannot be read: {reason}") from exc
    try:
        loaded = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: builds plain data only
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {file} is not valid YAML: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {file} must hold a mapping of sections, not {type(loaded).__name__}")
    return loaded


def _refuse_unknown_env_sections() -> None:
    """A `FLUXFORGE_<SECTION>__<KEY>` variable whose section does not exist would be ignored without a
    word by pydantic-settings (it only sees the names of real sections): refused, naming it."""
    sections = FluxForgeSettings.model_fields
    unknown = sorted(
        name
        for name in os.environ
        if name.upper().startswith(ENV_PREFIX)
        and "__" in name
        and name[len(ENV_PREFIX) :].split("__")[0].lower() not in sections
    )
    if unknown:
        raise ConfigError(
            f"environment variable(s) {', '.join(unknown)} name no configuration section; "
            f"the sections are {', '.join(sections)} (FLUXFORGE_<SECTION>__<KEY>)"
        )
    single = sorted(_single_underscore_keys())
    if single:
        raise ConfigError(
            "environment variable(s) "
            + ", ".join(f"{name} (meant {fixed}?)" for name, fixed in single)
            + " would be ignored: a section and its key are joined by two underscores"
        )


def _single_underscore_keys() -> Iterator[tuple[str, str]]:
    """`FLUXFORGE_STORAGE_ROOT`-like variables: a section and one of its keys joined by one underscore,
    which pydantic-settings ignores; with the spelling meant. Other `FLUXFORGE_*` names (the scripts'
    own, such as `FLUXFORGE_KAFKA_PORT`) name no key and are left alone."""
    sections = FluxForgeSettings.model_fields
    for name in os.environ:
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or "__" in name:
            continue
        rest = upper[len(ENV_PREFIX) :].lower()
        for section, field in sections.items():
            model = field.annotation
            if (
                not rest.startswith(section + "_")
                or not isinstance(model, type)
                or not issubclass(model, BaseModel)
            ):
                continue
            key = rest[len(section) + 1 :]
            if key in model.model_fields:
                yield name, f"{ENV_PREFIX}{section.upper()}__{key.upper()}"
