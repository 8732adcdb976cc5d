"""`S3Storage`: the storage contract on S3 or an S3-compatible store, through boto3.

An object appears whole or not at all: small files go up in one PUT, larger
ones (from `storage.s3.multipart_threshold_mb`) as a multipart upload, which
stays invisible until completed and is aborted when the upload fails. Every
request carries the bytes' Content-MD5, which the server checks, and a write
counts only once the object is verified: its size and ETag, read back, equal
the local `Digest` (storage/checksums.py). A multipart upload left behind by a
killed process is aborted by the next writer of the same key, or by
`abort_stale_uploads` once it is older than `storage.s3.stale_upload_hours`.

The client follows the AWS conventions (credentials, region and endpoint from
the environment, profiles or roles; `storage.s3` adds what they cannot say).
Nothing here logs or repeats a credential: errors name the bucket and key only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO, Final, cast

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from fluxforge_common.config.settings import S3Config
from fluxforge_common.storage.base import StorageBackend, check_path, is_hidden_name
from fluxforge_common.storage.checksums import Digest, DigestBuilder, content_md5, digest_stream
from fluxforge_common.storage.s3url import S3Url

MiB: Final = 1 << 20
_COPY_BLOCK: Final = 1 << 20
_NOT_FOUND: Final = frozenset({"404", "NoSuchKey", "NotFound"})


class VerificationError(OSError):
    """An object, read back, is not what was written (or a download is not what the listing promised)."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a listing says about an object: enough to compare it with a local file's `Digest`."""

    size: int
    etag: str


def s3_client(config: S3Config) -> Any:
    """A boto3 S3 client configured by `storage.s3` on top of the standard AWS environment."""
    session = boto3.session.Session(profile_name=config.profile, region_name=config.region)
    return session.client(
        "s3",
        endpoint_url=config.endpoint_url,
        config=BotoConfig(
            s3={"addressing_style": config.addressing_style},
            max_pool_connections=config.max_pool_connections,
            retries={"max_attempts": config.max_attempts, "mode": config.retry_mode},
            connect_timeout=config.connect_timeout_s,
            read_timeout=config.read_timeout_s,
            request_checksum_calculation=config.request_checksum_calculation,
            response_checksum_validation=config.response_checksum_validation,
        ),
    )


def pyarrow_filesystem(config: S3Config) -> Any:
    """pyarrow's S3FileSystem for the same store, for readers that scan Parquet in place.

    pyarrow's C++ SDK takes the checksum behaviour only from the environment, so
    `storage.s3`'s choice is put there (unless the environment already says).
    """
    import pyarrow.fs as pafs

    os.environ.setdefault("AWS_REQUEST_CHECKSUM_CALCULATION", config.request_checksum_calculation.upper())
    os.environ.setdefault("AWS_RESPONSE_CHECKSUM_VALIDATION", config.response_checksum_validation.upper())
    session = boto3.session.Session(profile_name=config.profile, region_name=config.region)
    endpoint = (
        config.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    )
    options: dict[str, Any] = {
        "region": session.region_name or "us-east-1",
        "force_virtual_addressing": config.addressing_style == "virtual",
        "connect_timeout": config.connect_timeout_s,
        "request_timeout": config.read_timeout_s,
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=config.max_attempts),
    }
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        options |= {"endpoint_override": host or scheme, "scheme": scheme if host else "https"}
    credentials = session.get_credentials()
    if credentials is not None:  # the profile's or the role's, which pyarrow's SDK may not find alone
        frozen = credentials.get_frozen_credentials()
        options |= {"access_key": frozen.access_key, "secret_key": frozen.secret_key}
        if frozen.token:
            options["session_token"] = frozen.token
    return pafs.S3FileSystem(**options)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Storage(StorageBackend):
    """Objects under `url` (a bucket and a key prefix), addressed by the same relative paths as local files."""

    def __init__(self, url: S3Url, config: S3Config, client: Any = None) -> None:
        self.url = url
        self.client = client if client is not None else s3_client(config)
        self.part_size = config.multipart_chunk_mb * MiB
        self.threshold = config.multipart_threshold_mb * MiB
        self.stale_upload_s = config.stale_upload_hours * 3600
        self.config = config
        self._arrow: Any = None  # pyarrow's filesystem of the same store, made on first use

    def __repr__(self) -> str:
        return f"S3Storage({str(self.url)!r})"

    def where(self, path: str) -> str:
        """`s3://bucket/key` of `path`, for messages."""
        return f"s3://{self.url.bucket}/{self.url.key(path)}"

    def digest(self, f: BinaryIO) -> Digest:
        """The digest of `f`'s remaining bytes with this store's part size."""
        return digest_stream(f, self.part_size, self.threshold)

    # -- writing -----------------------------------------------------------------------------------

    @contextmanager
    def open_write(self, path: str) -> Iterator[BinaryIO]:
        check_path(path)
        if is_hidden_name(path.rsplit("/", 1)[-1]):
            raise ValueError(f"{path!r} uses a temporary or unsealed-file name and would never be listed")
        with tempfile.SpooledTemporaryFile(max_size=self.part_size) as spool:
            yield cast(BinaryIO, spool)
            spool.seek(0)
            digest = self.digest(cast(BinaryIO, spool))
            spool.seek(0)
            self.put(path, cast(BinaryIO, spool), digest)

    def put(self, path: str, source: BinaryIO, digest: Digest, *, abort_earlier: bool = True) -> None:
        """Upload `digest.size` bytes of `source` to `path` and verify the object; raise if it does not match.

        `abort_earlier` first aborts unfinished multipart uploads of the same key
        (a killed writer's), which a caller that already cleaned up skips.
        """
        key = self.url.key(path)
        if abort_earlier and digest.multipart:
            self._abort_uploads(lambda upload_key, _started: upload_key == key)
        if not digest.multipart:
            data = source.read(digest.size)
            response = self.client.put_object(
                Bucket=self.url.bucket, Key=key, Body=data, ContentMD5=content_md5(digest.md5)
            )
        else:
            response = self._multipart(key, source, digest)
        if not digest.matches(digest.size, str(response.get("ETag", ""))):
            raise VerificationError(
                f"{self.where(path)}: the server stored other bytes than were sent (ETag "
                f"{response.get('ETag')}, expected {digest.etag}); the ETag of this store may not be an MD5"
            )
        self.verify(path, digest)

    def _multipart(self, key: str, source: BinaryIO, digest: Digest) -> Any:
        bucket = self.url.bucket
        upload_id = self.client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        try:
            parts = []
            for number, md5 in enumerate(digest.part_md5s, start=1):
                data = source.read(digest.part_size)
                part = self.client.upload_part(
                    Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data,
                    ContentMD5=content_md5(md5),
                )  # fmt: skip
                parts.append({"PartNumber": number, "ETag": part["ETag"]})
            return self.client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            # The original error says more; an upload that cannot be aborted now is aborted as stale later.
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise

    def verify(self, path: str, digest: Digest) -> None:
        """Raise `VerificationError` unless the object at `path` has `digest`'s size and ETag."""
        info = self.info(path)
        if info is None:
            raise VerificationError(f"{self.where(path)} is missing after its upload")
        if not digest.matches(info.size, info.etag):
            raise VerificationError(
                f"{self.where(path)} does not match the local file: {info.size} bytes, ETag {info.etag}; "
                f"expected {digest.size} bytes, ETag {digest.etag}"
            )

    def abort_stale_uploads(self, paths: Iterable[str] = ()) -> int:
        """Abort unfinished multipart uploads of `paths`, and any under the prefix older than the limit.

        Returns how many were aborted. Call it where no other writer may be uploading
        the named paths (a sync run about to upload them, a sink owning them).
        """
        keys = {self.url.key(p) for p in paths}
        limit = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=self.stale_upload_s)
        return self._abort_uploads(lambda key, started: key in keys or started < limit)

    def discard_incomplete(self, paths: list[str]) -> None:
        """Abort the unfinished multipart uploads of `paths` (a killed writer's)."""
        keys = {self.url.key(p) for p in paths}
        if keys:
            self._abort_uploads(lambda key, _started: key in keys)

    def _abort_uploads(self, chosen: Any) -> int:
        prefix = f"{self.url.prefix}/" if self.url.prefix else ""
        aborted = 0
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.url.bucket, Prefix=prefix):
            for upload in page.get("Uploads", []) or []:
                if chosen(upload["Key"], upload["Initiated"]):
                    try:
                        self.client.abort_multipart_upload(
                            Bucket=self.url.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        aborted += 1
                    except ClientError as exc:
                        if _error_code(exc) != "NoSuchUpload":  # finished or aborted meanwhile
                            raise
        return aborted

    # -- reading -----------------------------------------------------------------------------------

    def get(self, path: str, dest: BinaryIO, expected: ObjectInfo) -> None:
        """Copy the object at `path` into `dest`, verified against `expected` (its listing's size and ETag)."""
        body = self.client.get_object(Bucket=self.url.bucket, Key=self.url.key(path))["Body"]
        received = DigestBuilder(self.part_size, self.threshold)
        try:
            while block := body.read(_COPY_BLOCK):
                dest.write(block)
                received.update(block)
        finally:
            body.close()
        if received.size != expected.size:
            raise VerificationError(
                f"{self.where(path)}: received {received.size} bytes, the listing said {expected.size}"
            )
        if not received.result().matches(expected.size, expected.etag):
            raise VerificationError(
                f"{self.where(path)}: the bytes received do not match its ETag {expected.etag} "
                "(changed while read, or this store's ETag is not an MD5)"
            )

    def open_read(self, path: str) -> BinaryIO:
        try:
            response = self.client.get_object(Bucket=self.url.bucket, Key=self.url.key(path))
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND:
                raise FileNotFoundError(f"no object {self.where(path)}") from None
            raise
        return cast(BinaryIO, response["Body"])

    def open_random(self, path: str) -> BinaryIO:
        """Ranged GETs through pyarrow's S3 filesystem: a Parquet footer costs a few small reads."""
        if self._arrow is None:
            self._arrow = pyarrow_filesystem(self.config)
        return cast(BinaryIO, self._arrow.open_input_file(f"{self.url.bucket}/{self.url.key(path)}"))

    def info(self, path: str) -> ObjectInfo | None:
        """Size and ETag of the object at `path`, or None when there is none."""
        try:
            head = self.client.head_object(Bucket=self.url.bucket, Key=self.url.key(path))
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND:
                return None
            raise
        return ObjectInfo(size=int(head["ContentLength"]), etag=str(head["ETag"]).strip('"'))

    def exists(self, path: str) -> bool:
        return self.info(path) is not None

    def size(self, path: str) -> int:
        info = self.info(path)
        if info is None:
            raise FileNotFoundError(f"no object {self.where(path)}")
        return info.size

    def objects(self, prefix: str = "") -> dict[str, ObjectInfo]:
        """Every complete object under directory `prefix`, by dataset path (hidden names left out)."""
        directory = prefix.strip("/")
        key_prefix = (
            self.url.key(directory) + "/" if directory else (f"{self.url.prefix}/" if self.url.prefix else "")
        )
        found: dict[str, ObjectInfo] = {}
        for item in self._listing(key_prefix):
            key = str(item["Key"])
            if key.endswith("/") or is_hidden_name(key.rsplit("/", 1)[-1]):
                continue
            found[self.url.path(key)] = ObjectInfo(size=int(item["Size"]), etag=str(item["ETag"]).strip('"'))
        return found

    def _listing(self, key_prefix: str) -> Iterator[dict[str, Any]]:
        """Every object under `key_prefix`, page by page.

        Pages continue after the last key seen (StartAfter) rather than with the
        continuation token, which s3proxy returns URL-encoded once too often for
        keys holding `%` (every `symbol=BTC%2FUSDT`), repeating the same page.
        """
        start_after = ""
        while True:
            extra = {"StartAfter": start_after} if start_after else {}
            page = self.client.list_objects_v2(Bucket=self.url.bucket, Prefix=key_prefix, **extra)
            contents = page.get("Contents", []) or []
            yield from contents
            if not page.get("IsTruncated") or not contents:
                return
            start_after = str(contents[-1]["Key"])

    def list_files(self, prefix: str = "") -> list[str]:
        return sorted(self.objects(prefix))

    def move(self, source: str, dest: str) -> None:
        """S3 has no rename: copy `source` (verified against its ETag), verify `dest`, then delete `source`.

        A move killed before the delete leaves both objects, equal; moving again finishes it.
        """
        info = self.info(source)
        if info is None:
            raise FileNotFoundError(f"no object {self.where(source)}")
        with tempfile.SpooledTemporaryFile(max_size=self.part_size) as spool:
            copy = cast(BinaryIO, spool)
            self.get(source, copy, info)
            copy.seek(0)
            digest = self.digest(copy)
            copy.seek(0)
            self.put(dest, copy, digest)
        self.delete(source)

    def delete(self, path: str) -> None:
        self.client.delete_object(Bucket=self.url.bucket, Key=self.url.key(path))
