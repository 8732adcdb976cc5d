"""FluxForgeSettings: the whole configuration, from YAML, environment and flags.

Precedence, highest first: explicit overrides (CLI flags), environment variables
(`FLUXFORGE_<SECTION>__<KEY>`, e.g. `FLUXFORGE_KAFKA__BOOTSTRAP_SERVERS`), the
YAML file (`config/config.yaml` unless `--config`/`FLUXFORGE_CONFIG` names
another), then defaults. A wrong value fails at start with its key, the value
given and what is allowed (`ConfigError`).
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from fluxforge_common.config.state import StateConfig
from fluxforge_common.dataset.partitioning import Channel
from fluxforge_common.simulator.config import SimulatorConfig

DEFAULT_CONFIG_PATH = Path("config/config.yaml")
# The YAML file of the settings being loaded; a source of pydantic-settings reads it.
_yaml_file: ContextVar[Path | None] = ContextVar("fluxforge_yaml_file", default=None)


class ExchangeConfig(BaseModel):
    """One exchange a collector records (ccxt id as the key in `exchanges`)."""

    model_config = ConfigDict(extra="forbid")

    symbols: list[str] = Field(min_length=1, description="ccxt unified symbols, e.g. BTC/USDT.")
    channels: list[Channel] = Field(default=["book", "trade", "ticker"], min_length=1)
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
        description="Consecutive failures of a multi-symbol watch (other than disconnects and gaps) after "
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
            raise ValueError(
                f"credentials ({', '.join(found)}) do not belong in the config file: set "
                "FLUXFORGE_<EXCHANGE>_API_KEY / _SECRET / _PASSWORD or FLUXFORGE_<EXCHANGE>_CREDENTIALS_FILE"
            )
        return value


# ccxt's credential settings; none may come from the YAML file (DESIGN: keys from env or secret files).
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


class KafkaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = Field(default="fluxforge", pattern=r"^[A-Za-z0-9._-]{1,100}$")
    partitions: int = Field(default=6, ge=1, le=1000)
    replication_factor: int = Field(default=1, ge=1, le=10)
    raw_retention_hours: int = Field(default=72, ge=1)
    compression: Literal["zstd", "lz4", "gzip", "none"] = "zstd"
    batch_max_ticks: int = Field(default=100, ge=1, le=100_000, description="Ticks per raw batch message.")
    batch_linger_ms: int = Field(
        default=50, ge=0, le=60_000, description="Oldest tick's age that flushes a batch."
    )

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}.{name}"


class S3Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bucket: str = Field(min_length=3)
    prefix: str = ""
    endpoint_url: str | None = None
    region: str = "us-east-1"


class StorageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: Path = Field(default=Path("data"), description="Local dataset root.")
    s3: S3Config | None = None


class SinkConfig(BaseModel):
    """How output is batched into files."""

    model_config = ConfigDict(extra="forbid")

    raw_compression: Literal["zstd", "none"] = "zstd"
    raw_segment_max_mb: int = Field(default=64, ge=1, le=4096)
    raw_segment_max_age_s: int = Field(default=3600, ge=1)
    parquet_flush_rows: int = Field(default=50_000, ge=1, description="Rows buffered before a Parquet flush.")
    parquet_flush_seconds: float = Field(default=60.0, gt=0, description="Longest a row waits for its file.")
    row_group_size: int = Field(default=65_536, ge=1_000)
    max_message_bytes: int = Field(
        default=1 << 20, ge=1024, description="Larger raw messages are dead-lettered."
    )


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
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="Serve Prometheus metrics on this port (none: off)."
    )


class FluxForgeSettings(BaseSettings):
    """Everything a FluxForge process can be configured with."""

    model_config = SettingsConfigDict(env_prefix="FLUXFORGE_", env_nested_delimiter="__", extra="forbid")

    features: StateConfig = Field(default_factory=StateConfig)
    exchanges: dict[str, ExchangeConfig] = Field(
        default_factory=lambda: {
            "binanceus": ExchangeConfig(symbols=["BTC/USDT", "ETH/USDT", "SOL/USDT"]),
        }
    )
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    sink: SinkConfig = Field(default_factory=SinkConfig)
    collector: CollectorConfig = Field(default_factory=CollectorConfig)
    simulator: SimulatorConfig = Field(default_factory=SimulatorConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = _yaml_file.get()
        if yaml_file is None:
            return init_settings, env_settings
        return init_settings, env_settings, YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file)


class ConfigError(Exception):
    """A configuration that cannot be used; the message lists every bad key."""


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        given = error.get("input")
        if "credentials" in error["msg"]:
            given = "<redacted>"  # never echo a secret someone put in the file
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
    if file is not None:
        if not file.exists():
            raise ConfigError(
                f"config file {file} does not exist (copy config/config.examples.yaml to start one)"
            )
        try:
            loaded = yaml.safe_load(file.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {file} is not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(
                f"config file {file} must hold a mapping of sections, not {type(loaded).__name__}"
            )
    token = _yaml_file.set(file)
    try:
        return FluxForgeSettings(**(overrides or {}))
    except ValidationError as exc:
        source = f"{file}" if file else "defaults"
        raise ConfigError(_format_errors(exc, f"{source} + environment + flags")) from exc
    finally:
        _yaml_file.reset(token)
