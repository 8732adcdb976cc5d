"""The s3_sync service's Prometheus metrics (README.md "The dataset on S3" lists them)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

OBJECTS = Counter(
    "fluxforge_s3_sync_objects_total",
    "Files handled by sync, by dataset table and outcome (uploaded, downloaded, unchanged, deleted_local).",
    ["table", "outcome"],
)
BYTES = Counter(
    "fluxforge_s3_sync_bytes_total",
    "Bytes transferred, by dataset table and outcome (uploaded, downloaded).",
    ["table", "outcome"],
)
FAILURES = Counter(
    "fluxforge_s3_sync_failures_total",
    "Files that failed to transfer or verify, by reason (transfer, verify, disk_full, local).",
    ["reason"],
)
PENDING = Gauge("fluxforge_s3_sync_pending_files", "Files the running pass has still to handle.")
LAST_SUCCESS = Gauge(
    "fluxforge_s3_sync_last_success_timestamp_seconds", "When the last pass without failures finished."
)
