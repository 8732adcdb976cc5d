"""FluxForge s3_sync: copy the dataset between a local root and S3 the way `aws s3 sync` does, verified."""
