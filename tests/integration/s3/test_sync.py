"""`fluxforge sync` against a real S3-compatible server (issue 14's proofs of s3_sync)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from fluxforge_common.storage.base import temp_name
from fluxforge_common.storage.s3 import S3Storage
from fluxforge_s3_sync import metrics as sync_metrics
from fluxforge_s3_sync.plan import utc_today
from prometheus_client import generate_latest

from tests.support.http import catalogued_families, families, free_port, get
from tests.support.s3 import S3Bucket
from tests.support.small_disk import SmallDisk

MiB = 1 << 20
OLD = "date=2025-12-12"
pytestmark = pytest.mark.integration
Cli = Callable[..., str]


def write(root: Path, path: str, data: bytes) -> Path:
    full = root / path
    full.parent.mkdir(parents=True, exist_ok=True)
    full.write_bytes(data)
    return full


def dataset(root: Path, *, big: int = 0, date: str = OLD) -> dict[str, bytes]:
    """A few files in the dataset layout (contents need not be Parquet: sync moves bytes)."""
    files = {
        f"hf/exchange=binanceus/symbol=BTC%2FUSDT/{date}/part-{i}.parquet": os.urandom(1000 + i)
        for i in range(5)
    }
    files[f"raw/exchange=binanceus/channel=trade/{date}/seg-1.ndjson.zst"] = os.urandom(3000)
    files |= {f"trades/exchange=kraken/symbol=BTC%2FUSD/{date}/big-{i}.parquet": os.urandom(12 * MiB + i)
              for i in range(big)}  # fmt: skip
    for path, data in files.items():
        write(root, path, data)
    return files


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def remote_md5s(s3: S3Bucket, prefix: str) -> dict[str, str]:
    client = s3.client
    return {
        key[len(prefix) + 1 :]: md5(client.get_object(Bucket=s3.bucket, Key=key)["Body"].read())
        for key in s3.object_keys(f"{prefix}/")
    }


def test_upload_download_and_incremental_resync(s3: S3Bucket, tmp_path: Path, cli: Cli) -> None:
    root = tmp_path / "data"
    files = dataset(root, big=1)
    write(root, "spool/binanceus/seg-0.spool", b"collector's own")  # not the dataset
    write(root, f"hf/exchange=binanceus/symbol=BTC%2FUSDT/{OLD}/.tmp-abc-part", b"being written")
    out = cli("sync", "upload", root, s3.url("ds"))
    assert f"uploaded {len(files)} files" in out and "0 failed" in out and "MB/s" in out
    assert remote_md5s(s3, "ds") == {path: md5(data) for path, data in files.items()}
    assert s3.unfinished_uploads() == []

    assert "uploaded 0 files (0.0 MB) in" in cli("sync", "upload", root, s3.url("ds"))  # nothing sent again
    assert f"{len(files)} unchanged" in cli("sync", "upload", root, s3.url("ds"))
    assert "0 difference(s)" in cli("sync", "status", root, s3.url("ds"))

    changed = next(iter(files))
    write(root, changed, b"new content")
    write(root, "bars/exchange=x/symbol=Y/date=2025-12-13/new.parquet", b"added")
    status = cli("sync", "status", root, s3.url("ds"), expect_exit=1)
    assert f"differs      {changed}" in status and "only local   bars/exchange=x" in status
    assert "uploaded 2 files" in cli("sync", "upload", root, s3.url("ds"))

    copy = tmp_path / "copy"
    assert f"downloaded {len(files) + 1} files" in cli("sync", "download", s3.url("ds"), copy)
    for path in [*files, "bars/exchange=x/symbol=Y/date=2025-12-13/new.parquet"]:
        assert (copy / path).read_bytes() == (root / path).read_bytes()
    assert not (copy / "spool").exists()
    # A download killed mid-file left its temporary: the next one removes it (a stranger's stays).
    half = write(copy, f"{changed.rpartition('/')[0]}/{temp_name(changed.rpartition('/')[2])}", b"half")
    other = write(copy, f"{changed.rpartition('/')[0]}/{temp_name('not-a-remote-file')}", b"other")
    assert "downloaded 0 files" in cli("sync", "download", s3.url("ds"), copy)
    assert not half.exists() and other.exists()
    assert "0 difference(s)" in cli("sync", "status", copy, s3.url("ds"))
    not_a_directory = write(tmp_path, "a-file", b"")
    assert "is a file, not a directory" in cli(
        "sync", "download", s3.url("ds"), not_a_directory, expect_exit=2
    )


def listed_while_uploading(s3: S3Bucket, prefix: str) -> list[str]:
    """The keys under `prefix`; none while s3proxy cannot list them. Its filesystem backend fails
    a listing (500) that meets the file of a part still being written, before its attributes;
    S3 lists only what is complete."""
    try:
        return s3.object_keys(prefix)
    except ClientError as exc:
        if exc.response["ResponseMetadata"]["HTTPStatusCode"] != 500:
            raise
        return []


def test_kill_9_in_a_multipart_upload_then_rerun(s3: S3Bucket, tmp_path: Path) -> None:
    root = tmp_path / "data"
    files = {f"trades/exchange=kraken/symbol=BTC%2FUSD/{OLD}/big-{i}.parquet": os.urandom(10 * MiB + i)
             for i in range(6)}  # fmt: skip
    for path, data in files.items():
        write(root, path, data)
    env = {**os.environ, "FLUXFORGE_SYNC__CONCURRENCY": "2", "FLUXFORGE_STORAGE__S3__MULTIPART_THRESHOLD_MB": "5",
           "FLUXFORGE_STORAGE__S3__MULTIPART_CHUNK_MB": "5"}  # fmt: skip
    command = [sys.executable, "-m", "fluxforge.cli", "sync", "upload", str(root), s3.url("k")]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not listed_while_uploading(s3, "k/"):
        assert proc.poll() is None, f"sync ended before its first object: {proc.communicate()}"
        assert time.monotonic() < deadline, "no object appeared in 120 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = remote_md5s(s3, "k")
    assert 0 < len(at_kill) < len(files), "the kill must land in the middle of the upload"
    assert all(at_kill[path] == md5(files[path]) for path in at_kill)  # what is visible is whole

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr + rerun.stdout
    assert f"uploaded {len(files) - len(at_kill)} files" in rerun.stdout
    assert remote_md5s(s3, "k") == {path: md5(data) for path, data in files.items()}
    # No partial or duplicate object, nor parts of an unfinished upload (s3proxy lists those as keys).
    assert s3.object_keys() == sorted(f"k/{path}" for path in files)
    assert s3.unfinished_uploads() == []


def test_delete_local_after_verify(
    s3: S3Bucket, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "data"
    old = dataset(root)
    today = dataset(root, date=f"date={utc_today()}")
    temp = write(root, f"hf/exchange=binanceus/symbol=BTC%2FUSDT/{OLD}/.tmp-1234-part", b"being written")
    unsealed = write(
        root, f"raw/exchange=binanceus/channel=trade/{OLD}/.unsealed-seg-2.ndjson.zst.part", b"open"
    )
    uncommitted = f"bars/exchange=binanceus/symbol=BTC%2FUSDT/{OLD}/fluxforge.features.bars+0+5-9.parquet"
    write(root, uncommitted, b"a sink chunk whose offsets may not be committed yet")
    entry = {"topic": "t", "partition": 0, "start": 5, "end": 9, "files": [uncommitted]}
    write(root, ".sink/pending/fluxforge.features.bars+0.json", json.dumps(entry).encode())
    replaced, growing = sorted(old)[:2]
    put = S3Storage.put

    def put_then_disturb(self: S3Storage, path: str, *args: object, **kwargs: object) -> None:
        put(self, path, *args, **kwargs)  # type: ignore[arg-type]
        if path == replaced:  # another writer replaces the object: its check after upload fails
            self.client.put_object(Bucket=self.url.bucket, Key=self.url.key(path), Body=b"someone else's")
        if path == growing:  # the local file is still being written
            with (root / path).open("ab") as f:
                f.write(b"more rows")

    monkeypatch.setattr(S3Storage, "put", put_then_disturb)
    out = cli("sync", "upload", root, s3.url("d"), "--delete-local-after-verify", expect_exit=1)
    assert f"failed: {replaced}" in out and "does not match the local file" in out
    assert (root / replaced).exists()  # failed verification: kept
    assert (root / growing).exists()  # changed while uploaded: kept
    for path in set(old) - {replaced, growing}:
        assert not (root / path).exists(), path
        assert S3Storage(s3.storage("d").url, s3.config).read_bytes(path) == old[path]
    for path in today:  # today's partitions are still written to: uploaded, kept
        assert (root / path).read_bytes() == today[path]
    assert temp.exists() and unsealed.exists() and (root / uncommitted).exists()
    assert f"d/{uncommitted}" not in s3.object_keys()
    assert not any(".tmp-" in key or ".unsealed-" in key for key in s3.object_keys())


def test_download_onto_a_full_disk_says_where_and_what_to_do(
    s3: S3Bucket, tmp_path: Path, cli: Cli, small_disk: SmallDisk, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "data"
    files = {f"hf/exchange=a/symbol=B/{OLD}/part-{i}.parquet": os.urandom(1536 * 1024) for i in range(4)}
    for path, data in files.items():
        write(root, path, data)
    cli("sync", "upload", root, s3.url("f"))
    monkeypatch.setenv("FLUXFORGE_SYNC__CONCURRENCY", "1")
    out = cli("sync", "download", s3.url("f"), small_disk.path, expect_exit=3)
    assert f"the local disk is full at {small_disk.path}" in out and "MiB free" in out
    assert "run the same command again" in out
    got = [p for p in files if (small_disk.path / p).exists()]
    assert 0 < len(got) < len(files)
    assert all((small_disk.path / p).read_bytes() == files[p] for p in got)  # whole files only
    assert not [p for p in small_disk.path.rglob(".tmp-*")]


def test_credentials_never_in_output_errors_config_or_metrics_of_sync_and_compact(
    s3: S3Bucket, tmp_path: Path, cli: Cli
) -> None:
    secret = s3.server.secret
    root = tmp_path / "data"
    dataset(root)
    outputs = [
        cli("sync", "upload", root, s3.url("c")),
        cli("sync", "status", root, s3.url("c")),
        cli("sync", "upload", root, "s3://no-such-bucket-here/x", expect_exit=1),
        cli("config", "check"),
        generate_latest(sync_metrics.REGISTRY).decode(),
        cli("compact", s3.url("c"), "--before", "2026-01-01"),
        cli("compact", "s3://no-such-bucket-here/x", expect_exit=1),
    ]
    config = tmp_path / "leaky.yaml"
    config.write_text(f"storage:\n  s3:\n    url: s3://b-u-c/p\n    aws_secret_access_key: {secret}\n")
    refused = cli("config", "check", "--config", config, expect_exit=2)
    assert "credentials (aws_secret_access_key) do not belong in the config" in refused
    outputs.append(refused)
    assert "fluxforge_s3_sync_objects_total" in outputs[4]
    assert "compacted 0 partition(s)" in outputs[5] and "NoSuchBucket" in outputs[6]
    assert not [text for text in outputs if secret in text]


def uploaded(metrics_text: str) -> float:
    """Files the service has uploaded so far, every table."""
    pattern = r'^fluxforge_s3_sync_objects_total\{.*outcome="uploaded".*\} (\S+)$'
    return sum(float(value) for value in re.findall(pattern, metrics_text, re.M))


def test_the_service_serves_metrics_liveness_and_readiness_like_every_service(
    s3: S3Bucket, tmp_path: Path
) -> None:
    """`fluxforge sync upload --interval` with sync.metrics_port: /healthz, /readyz and every family
    docs/metrics.md lists for s3_sync; a pass that cannot reach its bucket makes it unready, not dead."""
    root = tmp_path / "data"
    files = dataset(root)
    ports = {"good": free_port(), "bad": free_port()}
    remotes = {"good": s3.url("svc"), "bad": "s3://no-such-bucket-here/x"}

    def service(name: str) -> subprocess.Popen[bytes]:
        command = ["sync", "upload", str(root), remotes[name], "--interval", "0.5"]
        env = {**os.environ, "FLUXFORGE_SYNC__METRICS_PORT": str(ports[name])}
        return subprocess.Popen([sys.executable, "-m", "fluxforge.cli", *command], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    procs = [service(name) for name in ports]

    def settled() -> bool:
        good = get(ports["good"], "/metrics")[1]
        return uploaded(good) == len(files) and get(ports["bad"], "/readyz")[0] == 503

    try:
        deadline = time.monotonic() + 60
        while not settled():
            assert all(p.poll() is None for p in procs), "a sync service exited"
            assert time.monotonic() < deadline, (get(ports["good"], "/metrics"), get(ports["bad"], "/readyz"))
            time.sleep(0.2)
        status, text = get(ports["good"], "/metrics")
        assert status == 200 and not catalogued_families("s3_sync") - families(text)
        assert "fluxforge_s3_sync_ready 1.0" in text and "process_cpu_seconds_total" in text
        assert get(ports["good"], "/readyz") == (200, "ready\n")
        assert get(ports["bad"], "/readyz")[1].startswith(
            "the last pass failed: s3://no-such-bucket-here/x: "
        )
        assert "fluxforge_s3_sync_ready 0.0" in get(ports["bad"], "/metrics")[1]
        assert get(ports["good"], "/healthz") == get(ports["bad"], "/healthz") == (200, "ok\n")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
    assert [proc.wait(30) for proc in procs] == [0, 0]


def test_a_date_reprocessed_after_its_upload_is_not_doubled_on_s3(
    s3: S3Bucket, tmp_path: Path, cli: Cli
) -> None:
    """Sync never deletes: the replaced files stay on S3, hidden by the partition's marker that reprocess
    writes and sync moves after the new files."""
    from tests.support.dataset import assert_same_dataset

    root, remote = tmp_path / "data", s3.url("reprocessed/ff")
    cli("run", "-o", root, "--duration", 120, "-q")
    cli("sync", "upload", root, remote)
    out = cli("reprocess", "--date", "2025-12-12", "--source-root", root, "-o", root, "-q")
    assert re.search(r"replaced [1-9]", out), out
    cli("sync", "upload", root, remote)
    stale = set(s3.object_keys("reprocessed/ff/")) - {
        f"reprocessed/ff/{p.relative_to(root)}" for p in root.rglob("*") if p.is_file()
    }
    assert stale, "the replaced files are still on S3 (sync never deletes): the test needs them there"
    assert_same_dataset(remote, root)
    report = cli("validate", "--root", remote)  # exit 0: the hidden files are warnings
    assert report.count("hidden by the partition's marker") == len(stale) and "error" not in report
    cli("compact", remote)
    assert not set(s3.object_keys("reprocessed/ff/")) & stale
    assert_same_dataset(remote, root)


def test_a_date_compacted_again_after_upload_and_delete_keeps_every_row_on_s3(
    s3: S3Bucket, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk-limited collector's day: a closed date compacted and uploaded with
    --delete-local-after-verify (the local marker goes too), then more files of that date arrive and
    are compacted and uploaded the same way. The second compaction starts again at generation 1;
    its files and marker must not replace the first ones on S3."""
    import pyarrow as pa

    from tests.support.dataset import read_dataset, sort_keys

    root, remote = tmp_path / "data", s3.url("collector/ff")
    monkeypatch.setenv("FLUXFORGE_COMPACTION__DELETE_GRACE_S", "0")
    monkeypatch.setenv("FLUXFORGE_PARQUET__FLUSH_ROWS", "20")  # several files per partition to merge
    merged = []
    for start_ms in (1765497600000, 1765540800000):  # 2025-12-12 00:00, then 12:00 of the same date
        monkeypatch.setenv("FLUXFORGE_SIMULATOR__START_MS", str(start_ms))
        cli("run", "-o", root, "--duration", 60, "-q")
        assert re.search(r"compacted [1-9]\d* partition", cli("compact", root))
        merged.append(read_dataset(root))  # this batch's rows only: the first batch left with its upload
        out = cli("sync", "upload", root, remote, "--delete-local-after-verify")
        assert "0 failed" in out and not list(root.glob("hf/**/*.parquet")), out
    on_s3 = read_dataset(remote)
    for table, rows in on_s3.items():
        both = pa.concat_tables([batch[table] for batch in merged])
        expected = both.sort_by(sort_keys(table)) if both.num_rows else both
        assert rows.num_rows == expected.num_rows and rows.equals(expected), table
    assert on_s3["hf"].num_rows > 0 and min(b["hf"].num_rows for b in merged) > 0
    assert "error" not in cli("validate", "--root", remote)


def test_delete_local_after_verify_keeps_the_dates_a_run_journal_names(
    s3: S3Bucket, tmp_path: Path, cli: Cli
) -> None:
    """A dead run's recovery rebuilds its dates' features from the local archive: it must still be whole."""
    from fluxforge_common.dataset.interrupted import RunJournal

    root = tmp_path / "data"
    journaled, free = dataset(root), dataset(root, date="date=2025-12-10")
    dead = RunJournal.begin(root)
    dead.note(OLD.removeprefix("date="))
    dead.release()  # killed: its journal stays for `recover`
    cli("sync", "upload", root, s3.url("j"), "--delete-local-after-verify")
    assert all((root / path).read_bytes() == data for path, data in journaled.items())
    assert not any((root / path).exists() for path in free)
    assert {f"j/{path}" for path in journaled | free} <= set(s3.object_keys("j/"))


def test_files_compacted_on_s3_are_not_sent_back_by_the_next_upload(
    s3: S3Bucket, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upload, `compact s3://...`, upload: the local files the remote marker lists as replaced stay
    local; S3 keeps only the merged files, so a globbing reader counts each row once."""
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    from tests.support.dataset import assert_same_dataset

    root, remote = tmp_path / "data", s3.url("compacted/ff")
    monkeypatch.setenv("FLUXFORGE_COMPACTION__DELETE_GRACE_S", "0")
    monkeypatch.setenv("FLUXFORGE_PARQUET__FLUSH_ROWS", "20")  # several files per partition to merge
    cli("run", "-o", root, "--duration", 60, "-q")
    cli("sync", "upload", root, remote)
    cli("compact", remote, "--before", "2026-01-01")
    after_compact = set(s3.object_keys("compacted/ff/"))
    out = cli("sync", "upload", root, remote)
    assert set(s3.object_keys("compacted/ff/")) == after_compact, out
    status = cli("sync", "status", root, remote, expect_exit=1)  # the merged files are only remote
    assert "only remote" in status and "only local" not in status
    assert_same_dataset(remote, root)
    endpoint = s3.server.env["AWS_ENDPOINT_URL"].removeprefix("http://")
    filesystem = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", region="us-east-1")
    globbed = ds.dataset(f"{s3.bucket}/compacted/ff/hf", filesystem=filesystem, format="parquet")
    assert globbed.count_rows() == pq_rows(root / "hf")


def pq_rows(directory: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(path).metadata.num_rows for path in directory.rglob("*.parquet"))


@pytest.mark.parametrize("how", ["flag", "config"])
def test_sync_logs_json_objects_when_asked_as_the_other_services_do(
    s3: S3Bucket, tmp_path: Path, how: str
) -> None:
    root = tmp_path / "data"
    dataset(root)
    command = [sys.executable, "-m", "fluxforge.cli", "sync", "upload", str(root), s3.url("j")]
    env = dict(os.environ)
    if how == "flag":
        command.append("--log-format=json")
    else:
        env["FLUXFORGE_LOGGING__FORMAT"] = "json"
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line one JSON object
    report = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert any("uploaded" in record["message"] for record in report), lines  # the report stays on stdout
    assert {record["logger"] for record in records} <= {"fluxforge.s3_sync", "fluxforge.s3_sync.report"}
