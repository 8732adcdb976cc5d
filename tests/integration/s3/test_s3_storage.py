"""S3Storage against a real S3-compatible server: the storage contract, multipart, verification, cleanup."""

from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError
from fluxforge_common.storage.checksums import digest_bytes
from fluxforge_common.storage.s3 import S3Storage, VerificationError

from tests.support.s3 import S3Bucket

MiB = 1 << 20
pytestmark = pytest.mark.integration


class BoomError(Exception):
    pass


def test_contract_round_trip_listing_and_delete(s3: S3Bucket) -> None:
    storage = s3.storage("data/set")
    for path in ["b/2.txt", "a/z/1.txt", "a/1.txt", "exchange=ab/x.txt", "exchange=a/y.txt"]:
        storage.write_bytes(path, path.encode())
    assert storage.read_bytes("a/z/1.txt") == b"a/z/1.txt"
    assert storage.size("b/2.txt") == 7 and storage.exists("b/2.txt") and not storage.exists("b")
    assert storage.list_files("a") == ["a/1.txt", "a/z/1.txt"]
    assert storage.list_files("exchange=a") == ["exchange=a/y.txt"]  # a directory, not a string prefix
    assert s3.object_keys()[0].startswith("data/set/")
    storage.delete("b/2.txt")
    storage.delete("b/2.txt")
    assert not storage.exists("b/2.txt")
    with pytest.raises(FileNotFoundError):
        storage.size("b/2.txt")
    with pytest.raises(FileNotFoundError):
        storage.open_read("b/2.txt")


def test_large_write_is_a_verified_multipart_upload(s3: S3Bucket) -> None:
    storage = s3.storage()
    data = os.urandom(12 * MiB + 123)
    with storage.open_write("big/file.bin") as f:
        for start in range(0, len(data), MiB):
            f.write(data[start : start + MiB])
    assert hashlib.md5(storage.read_bytes("big/file.bin")).digest() == hashlib.md5(data).digest()
    digest = digest_bytes(data, storage.part_size, storage.threshold)
    assert digest.multipart and len(digest.part_md5s) == 3
    storage.verify("big/file.bin", digest)
    assert s3.unfinished_uploads() == []


def test_failed_writes_leave_no_object_and_no_upload(s3: S3Bucket) -> None:
    storage = s3.storage()
    storage.write_bytes("f.bin", b"complete old file")
    with pytest.raises(BoomError), storage.open_write("f.bin") as f:
        f.write(b"half of the new")
        raise BoomError
    assert storage.read_bytes("f.bin") == b"complete old file"

    data = os.urandom(11 * MiB)
    digest = digest_bytes(data, storage.part_size, storage.threshold)

    class DiesAfterOnePart(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            if self.tell() >= storage.part_size:
                raise BoomError
            return super().read(size)

    with pytest.raises(BoomError):
        storage.put("multi.bin", DiesAfterOnePart(data), digest)
    assert not storage.exists("multi.bin")
    assert s3.unfinished_uploads() == []  # aborted, not left to accumulate


def test_stale_multipart_upload_of_a_killed_writer_is_aborted(s3: S3Bucket) -> None:
    storage = s3.storage("p")
    s3.client.create_multipart_upload(Bucket=s3.bucket, Key="p/left/behind.bin")
    assert s3.unfinished_uploads() == ["p/left/behind.bin"]
    data = os.urandom(6 * MiB)
    storage.put("left/behind.bin", io.BytesIO(data), digest_bytes(data, storage.part_size, storage.threshold))
    assert s3.unfinished_uploads() == []
    s3.client.create_multipart_upload(Bucket=s3.bucket, Key="p/other.bin")
    assert storage.abort_stale_uploads(["other.bin"]) == 1
    assert s3.unfinished_uploads() == []


def test_bytes_that_differ_from_their_digest_never_become_an_object(s3: S3Bucket) -> None:
    storage = s3.storage()
    digest = digest_bytes(b"what was hashed", storage.part_size, storage.threshold)
    with pytest.raises(ClientError, match="BadDigest"):
        storage.put("changed.bin", io.BytesIO(b"what is sent!!!"), digest)
    assert not storage.exists("changed.bin")
    storage.write_bytes("x.bin", b"abc")
    with pytest.raises(VerificationError, match="does not match"):
        storage.verify("x.bin", digest)


def test_download_is_verified_against_the_listing(s3: S3Bucket) -> None:
    storage: S3Storage = s3.storage()
    storage.write_bytes("d.bin", b"payload")
    info = storage.objects()["d.bin"]
    out = io.BytesIO()
    storage.get("d.bin", out, info)
    assert out.getvalue() == b"payload"
    s3.client.put_object(Bucket=s3.bucket, Key="d.bin", Body=b"PAYLOAD")  # replaced after the listing
    with pytest.raises(VerificationError):
        storage.get("d.bin", io.BytesIO(), info)


def test_listing_past_one_page_of_percent_encoded_keys(s3: S3Bucket) -> None:
    storage = s3.storage("p")
    paths = [f"hf/exchange=a/symbol=BTC%2FUSDT/date=2025-12-12/part-{i:04d}.parquet" for i in range(1005)]
    client = s3.client
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: client.put_object(Bucket=s3.bucket, Key=f"p/{p}", Body=b"x"), paths))
    assert storage.list_files() == paths  # every page once, none repeated (s3proxy's token is mis-encoded)
