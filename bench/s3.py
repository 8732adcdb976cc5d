"""S3 transfer rates: `fluxforge sync` against boto3's own `upload_file`/`download_file` loop.

A day of one symbol's HF files as the sink writes them (1,440 one-minute
files of real HF rows) goes to a real S3-compatible server (scripts/s3.sh,
s3proxy on port $FLUXFORGE_S3_PORT, default 19140) and back, once through
s3_sync's `Syncer` (digest, Content-MD5, verification) and once through a
plain boto3 loop, both with `sync.concurrency` threads on the same files.
Then `fluxforge compact` merges the downloaded day, and the uploaded one in
place on the server, into one file each (rows/s).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from fluxforge_common.config import FluxForgeSettings
from fluxforge_common.dataset.compaction import compact_dataset
from fluxforge_common.storage.base import StorageBackend
from fluxforge_common.storage.local import LocalStorage
from fluxforge_common.storage.s3 import S3Storage, s3_client
from fluxforge_common.storage.s3url import S3Url
from fluxforge_s3_sync.transfer import Syncer

from bench.sink import hf_messages
from bench.table import Row

REPO_ROOT = Path(__file__).resolve().parents[1]
FILES = 1440  # one file per minute for a day (sink.feature_span_s = 60)
ROWS_PER_FILE = 60  # one HF row per second


@contextmanager
def s3_server() -> Iterator[None]:
    """scripts/s3.sh's server, its client environment in os.environ; stopped again if started here."""
    env = {**os.environ, "FLUXFORGE_S3_PORT": os.environ.get("FLUXFORGE_S3_PORT", "19140")}
    script = ["bash", str(REPO_ROOT / "scripts" / "s3.sh")]
    was_up = subprocess.run([*script, "status"], env=env, capture_output=True, check=False).returncode == 0
    up = subprocess.run([*script, "up"], env=env, capture_output=True, text=True, check=True)
    saved = dict(os.environ)
    os.environ.update(dict(line.split("=", 1) for line in up.stdout.strip().splitlines()))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        if not was_up:
            subprocess.run([*script, "down"], env=env, capture_output=True, check=False)


def hf_day(root: Path) -> int:
    """Write a day of one symbol's HF files under `root`; returns their total bytes."""
    import orjson

    rows = [orjson.loads(value)[0] for _key, value in hf_messages(ROWS_PER_FILE, symbols=1)]
    table = pa.Table.from_pylist(rows)
    directory = root / "hf/exchange=binanceus/symbol=BTC%2FUSDT/date=2025-12-12"
    directory.mkdir(parents=True)
    pq.write_table(table, directory / "part-0000.parquet", compression="zstd")
    data = (directory / "part-0000.parquet").read_bytes()
    for minute in range(1, FILES):
        (directory / f"part-{minute:04d}.parquet").write_bytes(data)
    return len(data) * FILES


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def run() -> list[Row]:
    settings = FluxForgeSettings()
    threads = settings.sync.concurrency
    with s3_server(), tempfile.TemporaryDirectory(prefix="ff-bench-s3-") as tmp:
        root = Path(tmp) / "data"
        nbytes = hf_day(root)
        files = sorted(p for p in root.rglob("*.parquet"))
        client = s3_client(settings.storage.s3)
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)

        def syncer(prefix: str, local: Path) -> Syncer:
            remote = S3Storage(S3Url(bucket, prefix), settings.storage.s3, client)
            return Syncer(LocalStorage(local, durable=False), remote, concurrency=threads)

        def boto3_loop(transfer: Callable[[Path], object]) -> None:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(transfer, files))

        def key(prefix: str, path: Path) -> str:
            return f"{prefix}/{path.relative_to(root).as_posix()}"

        up_sync = timed(lambda: syncer("sync", root).upload())
        up_boto = timed(lambda: boto3_loop(lambda p: client.upload_file(str(p), bucket, key("boto", p))))
        down_root = Path(tmp) / "down"
        down_sync = timed(lambda: syncer("sync", down_root).download())

        def fetch(path: Path) -> None:
            target = Path(tmp) / "down-boto" / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, key("boto", path), str(target))

        down_boto = timed(lambda: boto3_loop(fetch))
        shutil.rmtree(root)

        def compaction(storage: StorageBackend) -> Callable[[], object]:
            target = settings.compaction.target_file_mb << 20
            return lambda: compact_dataset(
                storage, ["hf"], before="2100-01-01", target_bytes=target, grace_s=0
            )

        compact_local = timed(compaction(LocalStorage(down_root)))
        compact_s3 = timed(compaction(S3Storage(S3Url(bucket, "sync"), settings.storage.s3, client)))
    mb = nbytes / 1e6
    label = f"s3 {FILES} HF files ({mb:.0f} MB), {threads} threads"
    rows: list[Row] = []
    for name, ours, theirs in [("upload", up_sync, up_boto), ("download", down_sync, down_boto)]:
        rows += [
            (f"{label}: sync {name}", f"{mb / ours:,.1f} MB/s, {FILES / ours:,.0f} files/s", "verified"),
            (
                f"{label}: boto3 {name}_file loop",
                f"{mb / theirs:,.1f} MB/s, {FILES / theirs:,.0f} files/s",
                "",
            ),
            (f"{label}: sync / boto3 {name}", f"{theirs / ours:.2f}", "ratio of rates"),
        ]
    nrows = FILES * ROWS_PER_FILE
    for where, seconds in [("local root", compact_local), ("s3proxy", compact_s3)]:
        rows.append((
            f"compact {FILES} HF files ({nrows:,} rows) into 1 on a {where}",
            f"{nrows / seconds:,.0f} rows/s, {FILES / seconds:,.0f} files/s",
            "read, sort by ts, write, switch, delete",
        ))  # fmt: skip
    return rows


if __name__ == "__main__":
    from bench.table import print_table

    print_table(run())
