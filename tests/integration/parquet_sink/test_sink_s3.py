"""The sink writing to a real S3-compatible server (s3proxy), alone and beside the local root."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from pathlib import Path

import pytest
from fluxforge_common.features import TABLES
from fluxforge_common.storage import LocalStorage
from fluxforge_common.storage.base import StorageBackend
from fluxforge_common.storage.mirror import MirroredStorage
from fluxforge_parquet_sink.journal import JOURNAL_DIR
from fluxforge_parquet_sink.runner import KafkaSink

from fluxforge.stack.services import fluxforge_argv
from tests.integration.parquet_sink.test_sink_kafka import BOUND_ENV, BOUND_FLAGS, POLICY, _settings
from tests.support.dataset import assert_same_dataset
from tests.support.s3 import S3Bucket
from tests.support.sink_kafka import PipelineTopics, kill_9_then_finish, offsets, produce
from tests.support.stack_data import StackData

pytestmark = pytest.mark.integration


def _objects(storage: StorageBackend) -> dict[str, str]:
    """Every data file (the journal left out) -> the MD5 of its bytes."""
    return {
        path: hashlib.md5(storage.read_bytes(path)).hexdigest()
        for path in storage.list_files()
        if not path.startswith(JOURNAL_DIR)
    }


def test_kill_9_of_a_sink_writing_to_s3_gives_the_objects_of_an_uninterrupted_run(
    pipeline: PipelineTopics, stack_data: StackData, expected_root: Path, s3: S3Bucket, tmp_path: Path
) -> None:
    """`fluxforge sink --target s3` is killed with SIGKILL at four points, then runs to the end; an
    uninterrupted sink writing to a local root and S3 at once gives the same names and bytes on both."""
    asyncio.run(produce(pipeline.kafka, stack_data))
    group = f"sink-{uuid.uuid4().hex[:8]}"
    killed = s3.storage("killed")
    command = [
        *fluxforge_argv("sink"), "--bootstrap", pipeline.kafka.bootstrap_servers,
        "--topic-prefix", pipeline.kafka.topic_prefix, "--root", str(tmp_path / "unused"), "--group-id", group,
        "--instance-id", "sink-0", "--until-caught-up", "--progress-seconds", "1", "--target", "s3",
        *BOUND_FLAGS,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXFORGE_")} | BOUND_ENV
    env["FLUXFORGE_STORAGE__S3__URL"] = s3.url("killed")
    kill_9_then_finish(command, env, tmp_path, lambda: len(_objects_listed(killed)), (5, 40, 90, 150))
    assert not (tmp_path / "unused").exists() or LocalStorage(tmp_path / "unused").list_files() == []
    committed, ends = asyncio.run(offsets(pipeline.kafka, group, pipeline.topics))
    assert committed == ends
    assert s3.unfinished_uploads() == []

    local_root = tmp_path / "reference"
    both = MirroredStorage(LocalStorage(local_root), s3.storage("reference"))
    settings = _settings(pipeline, local_root)
    reference = KafkaSink(settings, group_id=f"{group}-reference", tables=TABLES, raw=True, deadletter=True,
                          policy=POLICY, storage=both, until_caught_up=True)  # fmt: skip
    asyncio.run(reference.run())
    assert_same_dataset(local_root, expected_root)  # the embedded pipeline's rows
    expected = _objects(LocalStorage(local_root))
    assert len(expected) > 150
    assert _objects(s3.storage("reference")) == expected
    assert _objects(killed) == expected


def _objects_listed(storage: StorageBackend) -> list[str]:
    return [path for path in storage.list_files() if not path.startswith(JOURNAL_DIR)]
