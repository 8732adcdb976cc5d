"""Provenance: what every Parquet file records about how it was made, as key-value footer metadata.

Keys (all strings, under `fluxforge.`): `version` (of fluxforge-common),
`schema_version` (of the dataset's layout and columns), `config_fingerprint`
and `features` (the feature parameters, JSON), and `source` (JSON: the run
mode and its input, or the Kafka topic, partition and offset range). Nothing
depends on the wall clock, so the sink's files stay byte-for-byte
reproducible. `fluxforge validate` and the readers compare fingerprints to
find rows computed under different parameters in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final

import orjson

from fluxforge_common.config.state import StateConfig
from fluxforge_common.features.symbol_state import config_fingerprint

PREFIX: Final = "fluxforge."
# Bumped when a table's layout or a column's meaning changes incompatibly.
SCHEMA_VERSION: Final = "1"
FINGERPRINT_KEY: Final = b"fluxforge.config_fingerprint"


@cache
def fluxforge_version() -> str:
    try:
        return version("fluxforge-common")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True, slots=True)
class Provenance:
    """The provenance of a file; `metadata()` is what the Parquet writer puts in its footer."""

    version: str
    schema_version: str
    config_fingerprint: str
    features: str
    source: str

    def metadata(self) -> dict[str, str]:
        return {
            f"{PREFIX}version": self.version,
            f"{PREFIX}schema_version": self.schema_version,
            f"{PREFIX}config_fingerprint": self.config_fingerprint,
            f"{PREFIX}features": self.features,
            f"{PREFIX}source": self.source,
        }

    def with_source(self, source: Mapping[str, Any]) -> Provenance:
        return replace(self, source=_json(source))


def provenance(cfg: StateConfig, source: Mapping[str, Any]) -> Provenance:
    """Provenance of files computed under `cfg` from `source` (e.g. `{"mode": "embedded", "input": ...}`)."""
    return Provenance(
        fluxforge_version(), SCHEMA_VERSION, config_fingerprint(cfg), cfg.parameters_json(), _json(source)
    )


def read_provenance(metadata: Mapping[bytes, bytes] | None) -> Provenance | None:
    """The provenance in a file's schema metadata, or None for a file written without it."""
    if not metadata or FINGERPRINT_KEY not in metadata:
        return None
    fields = {
        key.decode()[len(PREFIX) :]: value.decode()
        for key, value in metadata.items()
        if key.startswith(b"fluxforge.")
    }
    return Provenance(
        fields.get("version", ""),
        fields.get("schema_version", ""),
        fields["config_fingerprint"],
        fields.get("features", ""),
        fields.get("source", ""),
    )


def differing_parameters(a: Provenance, b: Provenance) -> list[str]:
    """`name: a-value -> b-value` for each feature parameter that differs between two files."""
    try:
        left, right = orjson.loads(a.features), orjson.loads(b.features)
    except orjson.JSONDecodeError:
        return []
    return [
        f"{key}: {left.get(key)} -> {right.get(key)}"
        for key in sorted(set(left) | set(right))
        if left.get(key) != right.get(key)
    ]


def _json(value: Mapping[str, Any]) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
