"""`s3://BUCKET/PREFIX`: the one way FluxForge names a dataset on S3 (in the config and on the command line)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from fluxforge_common.storage.base import check_path

S3_SCHEME: Final = "s3://"
# S3's rules for bucket names (3-63 characters of lower-case letters, digits, dots and hyphens).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class S3Url:
    """A bucket and a key prefix ("" or a clean relative path, no trailing slash)."""

    bucket: str
    prefix: str = ""

    def __str__(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.prefix}" if self.prefix else f"{S3_SCHEME}{self.bucket}"

    def key(self, path: str) -> str:
        """The object key of dataset path `path` (a relative POSIX path)."""
        check_path(path)
        return f"{self.prefix}/{path}" if self.prefix else path

    def path(self, key: str) -> str:
        """The dataset path of object `key`, which must lie under the prefix."""
        if not self.prefix:
            return key
        if not key.startswith(self.prefix + "/"):
            raise ValueError(f"object key {key!r} is not under {self}")
        return key[len(self.prefix) + 1 :]

    def child(self, path: str) -> S3Url:
        """The location of directory `path` under this one."""
        return S3Url(self.bucket, self.key(path.strip("/"))) if path.strip("/") else self


def is_s3_url(text: str) -> bool:
    """True when `text` names an S3 location rather than a local path."""
    return text.startswith(S3_SCHEME)


def parse_s3_url(text: str) -> S3Url:
    """`s3://bucket` or `s3://bucket/some/prefix` (a trailing slash is dropped); ValueError says what is wrong."""
    if not is_s3_url(text):
        raise ValueError(f"{text!r} is not an S3 location: write it as s3://BUCKET/PREFIX")
    bucket, _, prefix = text[len(S3_SCHEME) :].partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ValueError(
            f"{text!r}: {bucket!r} is not a valid bucket name (3-63 lower-case letters, digits, '.' and '-')"
        )
    prefix = prefix.rstrip("/")
    if prefix:
        try:
            check_path(prefix)
        except ValueError as exc:
            raise ValueError(f"{text!r}: bad prefix: {exc}") from None
    return S3Url(bucket, prefix)
