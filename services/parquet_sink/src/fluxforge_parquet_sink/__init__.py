"""FluxForge parquet sink service."""
