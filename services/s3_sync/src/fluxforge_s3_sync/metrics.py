"""The s3_sync service's Prometheus metrics (docs/metrics.md lists them), in a registry of their own.

`fluxforge_common.health` serves them beside the gauges every service has
(`fluxforge_s3_sync_ready`, `_heartbeat_age_seconds`, `_build_info`).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry(auto_describe=True)
OBJECTS = Counter(
    "fluxforge_s3_sync_objects_total",
    "Files handled by sync, by dataset table and outcome (uploaded, downloaded, unchanged, deleted_local).",
    ["table", "outcome"],
    registry=REGISTRY,
)
BYTES = Counter(
    "fluxforge_s3_sync_bytes_total",
    "Bytes transferred, by dataset table and outcome (uploaded, downloaded).",
    ["table", "outcome"],
    registry=REGISTRY,
)
FAILURES = Counter(
    "fluxforge_s3_sync_failures_total",
    "Files that failed to transfer or verify, by reason (transfer, verify, disk_full, local, marker).",
    ["reason"],
    registry=REGISTRY,
)
for _reason in ("transfer", "verify", "disk_full", "local", "marker"):
    FAILURES.labels(_reason)  # each reason's series exists (at 0) before its first failure
PENDING = Gauge(
    "fluxforge_s3_sync_pending_files", "Files the running pass has still to handle.", registry=REGISTRY
)
LAST_SUCCESS = Gauge(
    "fluxforge_s3_sync_last_success_timestamp_seconds",
    "When the last pass without failures finished.",
    registry=REGISTRY,
)
