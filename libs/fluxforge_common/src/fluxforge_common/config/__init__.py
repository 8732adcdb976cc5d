"""Configuration models and their loader."""

from fluxforge_common.config.settings import (
    CollectorConfig,
    CompactionConfig,
    ConfigError,
    DeadLetterConfig,
    EmbeddedConfig,
    EngineConfig,
    ExchangeConfig,
    FluxForgeSettings,
    KafkaConfig,
    MessagesConfig,
    ParquetConfig,
    RawArchiveConfig,
    S3Config,
    SinkConfig,
    StorageConfig,
    SyncConfig,
    load_settings,
)
from fluxforge_common.config.state import StateConfig

__all__ = [
    "CollectorConfig",
    "CompactionConfig",
    "ConfigError",
    "DeadLetterConfig",
    "EmbeddedConfig",
    "EngineConfig",
    "ExchangeConfig",
    "FluxForgeSettings",
    "KafkaConfig",
    "MessagesConfig",
    "ParquetConfig",
    "RawArchiveConfig",
    "S3Config",
    "SinkConfig",
    "StateConfig",
    "StorageConfig",
    "SyncConfig",
    "load_settings",
]
