"""s3:// locations, the ETag a local file's digest predicts, and the storage.s3 settings."""

from __future__ import annotations

import hashlib
import io

import pytest
from fluxforge_common.config import ConfigError, load_settings
from fluxforge_common.storage.checksums import digest_bytes, digest_stream
from fluxforge_common.storage.s3url import S3Url, parse_s3_url


def test_s3_urls() -> None:
    assert parse_s3_url("s3://my-bucket/a/b/") == S3Url("my-bucket", "a/b")
    assert str(parse_s3_url("s3://my-bucket")) == "s3://my-bucket"
    url = parse_s3_url("s3://my-bucket/pre")
    assert url.key("hf/x.parquet") == "pre/hf/x.parquet" and url.path("pre/hf/x.parquet") == "hf/x.parquet"
    for bad in ["my-bucket/a", "s3://B/a", "s3://ab", "s3://bucket/../x", "https://bucket/a"]:
        with pytest.raises(ValueError, match=r"s3://|bucket|prefix"):
            parse_s3_url(bad)


def test_digest_predicts_single_and_multipart_etags() -> None:
    data = bytes(range(256)) * 100  # 25,600 bytes
    small = digest_bytes(data, part_size=10_000, threshold=30_000)
    assert not small.multipart and small.etag == hashlib.md5(data).hexdigest()
    big = digest_stream(io.BytesIO(data), part_size=10_000, threshold=20_000)
    parts = [hashlib.md5(data[i : i + 10_000]).digest() for i in range(0, len(data), 10_000)]
    assert big.etag == hashlib.md5(b"".join(parts)).hexdigest() + "-3"
    assert big.matches(len(data), f'"{big.etag}"') and big.matches(len(data), hashlib.md5(data).hexdigest())
    assert not big.matches(len(data) + 1, big.etag) and not big.matches(len(data), "0" * 32)


def test_storage_s3_refuses_secrets_and_old_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXFORGE_STORAGE__S3__AWS_SECRET_ACCESS_KEY", "do-not-echo-me")
    refusal = (
        r"storage\.s3 = '<redacted>': .*credentials \(aws_secret_access_key\) do not belong in the config"
    )
    with pytest.raises(ConfigError, match=refusal) as refused:
        load_settings(None)
    assert "do-not-echo-me" not in str(refused.value)
    monkeypatch.delenv("FLUXFORGE_STORAGE__S3__AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("FLUXFORGE_STORAGE__S3__BUCKET", "my-bucket")
    with pytest.raises(ConfigError, match=r"storage.s3.url: s3://BUCKET/PREFIX"):
        load_settings(None)


def test_storage_s3_values_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXFORGE_STORAGE__S3__URL", "s3://my-bucket/data/")
    assert load_settings(None).storage.s3.url == "s3://my-bucket/data"
    monkeypatch.setenv("FLUXFORGE_SYNC__CONCURRENCY", "64")
    with pytest.raises(ConfigError, match="max_pool_connections"):
        load_settings(None)


def test_a_sink_target_on_s3_needs_its_location(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXFORGE_SINK__TARGET", "local+s3")
    with pytest.raises(ConfigError, match=r"sink.target 'local\+s3' writes to S3: give the location"):
        load_settings(None)
    monkeypatch.setenv("FLUXFORGE_STORAGE__S3__URL", "s3://my-bucket/data")
    assert load_settings(None).sink.target == "local+s3"
