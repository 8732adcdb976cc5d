"""A dataset root as the user names it (a directory or `s3://BUCKET/PREFIX`) opened as a `StorageBackend`."""

from __future__ import annotations

from pathlib import Path

from fluxforge_common.config.settings import S3Config
from fluxforge_common.storage.base import StorageBackend
from fluxforge_common.storage.local import LocalStorage
from fluxforge_common.storage.s3url import is_s3_url, parse_s3_url


def storage_at(root: str | Path, s3: S3Config, *, durable: bool = True) -> StorageBackend:
    """`LocalStorage` for a directory, `S3Storage` (reached as `s3` says) for an `s3://` location."""
    text = str(root)
    if is_s3_url(text):
        from fluxforge_common.storage.s3 import S3Storage  # boto3 only when S3 is used

        return S3Storage(parse_s3_url(text), s3)
    return LocalStorage(text, durable=durable)
