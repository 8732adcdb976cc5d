"""Configuration models and their loader."""

from fluxforge_common.config.settings import (
    CollectorConfig,
    ConfigError,
    DeadLetterConfig,
    EmbeddedConfig,
    EngineConfig,
    ExchangeConfig,
    FluxForgeSettings,
    HealthConfig,
    KafkaConfig,
    MessagesConfig,
    ParquetConfig,
    RawArchiveConfig,
    S3Config,
    SinkConfig,
    StorageConfig,
    load_settings,
)
from fluxforge_common.config.state import StateConfig

__all__ = [
    "CollectorConfig",
    "ConfigError",
    "DeadLetterConfig",
    "EmbeddedConfig",
    "EngineConfig",
    "ExchangeConfig",
    "FluxForgeSettings",
    "HealthConfig",
    "KafkaConfig",
    "MessagesConfig",
    "ParquetConfig",
    "RawArchiveConfig",
    "S3Config",
    "SinkConfig",
    "StateConfig",
    "StorageConfig",
    "load_settings",
]
