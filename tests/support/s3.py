"""A real S3-compatible server for the tests (s3proxy from scripts/s3.sh), and a fresh bucket per test.

`s3_server` (session) runs `scripts/s3.sh up` on port $FLUXFORGE_S3_PORT (default 19140, moved to
the xdist worker's own by `tests.support.workers`) and, if it started the server, stops it at the
end of the session. `s3` (per test) creates a bucket of the test's own, puts the server's client
environment (AWS_ENDPOINT_URL, the credentials, the checksum settings) into os.environ for the
test, and gives settings and a boto3 client for it.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
from fluxforge_common.config import FluxForgeSettings
from fluxforge_common.config.settings import S3Config, StorageConfig, SyncConfig
from fluxforge_common.storage.s3 import S3Storage, s3_client
from fluxforge_common.storage.s3url import S3Url

from tests.support.workers import server_port

REPO_ROOT = Path(__file__).resolve().parents[2]
S3_SCRIPT = REPO_ROOT / "scripts" / "s3.sh"


@dataclass(frozen=True)
class S3Server:
    """A running server and the environment its clients need."""

    port: int
    env: dict[str, str]

    @property
    def secret(self) -> str:
        return self.env["AWS_SECRET_ACCESS_KEY"]


def _script(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLUXFORGE_S3_PORT": str(port)}
    return subprocess.run(["bash", str(S3_SCRIPT), *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=600, check=False)  # fmt: skip


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    port = server_port("FLUXFORGE_S3_PORT", 19140)
    was_up = _script(port, "status").returncode == 0
    up = _script(port, "up")
    if up.returncode != 0:
        pytest.fail(f"scripts/s3.sh up (port {port}) failed:\n{up.stderr}\n{up.stdout}", pytrace=False)
    env = dict(line.split("=", 1) for line in up.stdout.strip().splitlines())
    try:
        yield S3Server(port, env)
    finally:
        if not was_up:
            _script(port, "down")


@dataclass
class S3Bucket:
    """A test's bucket on the server, with settings and clients that reach it."""

    server: S3Server
    bucket: str
    config: S3Config

    def url(self, prefix: str = "") -> str:
        return f"s3://{self.bucket}/{prefix}" if prefix else f"s3://{self.bucket}"

    def storage(self, prefix: str = "") -> S3Storage:
        return S3Storage(S3Url(self.bucket, prefix), self.config)

    def settings(self, **sync: Any) -> FluxForgeSettings:
        return FluxForgeSettings(storage=StorageConfig(s3=self.config), sync=SyncConfig(**sync))

    @cached_property
    def client(self) -> Any:
        return s3_client(self.config)

    def object_keys(self, prefix: str = "") -> list[str]:
        """Every key under `prefix`, including what a server may show of unfinished uploads."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(str(item["Key"]) for page in pages for item in page.get("Contents", []) or [])

    def unfinished_uploads(self) -> list[str]:
        return [
            str(u["Key"]) for u in self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        ]


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> S3Bucket:
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    slug = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40]
    bucket = f"t-{slug}-{uuid.uuid4().hex[:8]}".strip("-")
    config = S3Config(multipart_threshold_mb=5, multipart_chunk_mb=5)
    s3_client(config).create_bucket(Bucket=bucket)
    return S3Bucket(s3_server, bucket, config)
