"""Scale-out on one machine: 1 -> 2 feature-engine workers and 1 -> 2 sink processes over one broker.

`python -m bench.scale_out [TICKS]` (a broker from FLUXFORGE_KAFKA_BOOTSTRAP, as `make bench`).

- Engine: TICKS simulated ticks are published to a raw topic of `kafka.partitions` (6)
  partitions first; then 1 or 2 workers of one app start together and the rate is TICKS over
  the time from the first output message to the last HF row (bench.feature_engine).
- Sink: TICKS // 4 real HF rows of 50 symbols on 2 exchanges (bench.sink) are produced to the HF
  topic (6 partitions) first; then 1 or 2 `fluxforge sink --until-caught-up` processes of one
  group start together and the rate is the rows over the time from their start to the last
  one's exit (start-up, group join, fetch, Parquet, fsync and commits included), the rows
  read back from the dataset.

The 1- and 2-process runs alternate (ROUNDS pairs) and the table shows the medians and the
ratio; every process is a separate interpreter, so two of them can use both cores.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
from fluxforge_common.config.settings import KafkaConfig
from fluxforge_common.kafka import TopicNames, ensure_topics, producer, topic_specs

from bench.collector import delete_topics
from bench.feature_engine import measure_throughput
from bench.sink import hf_messages
from bench.table import Row, print_table
from tests.support.processes import ServiceProcess

ROUNDS = 2


async def _produce(kafka: KafkaConfig, topic: str, messages: list[tuple[str, bytes]]) -> None:
    client = producer(kafka)
    await client.start()
    try:
        futures: list[Any] = [await client.send(topic, value, key=key.encode()) for key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await client.stop()


async def sink_rate(bootstrap: str, root: Path, messages: list[tuple[str, bytes]], sinks: int) -> float:
    """HF rows/s of `sinks` sink processes of one group, from their start to the last exit."""
    prefix = f"ffbench-scale-{uuid.uuid4().hex[:8]}"
    kafka = KafkaConfig(bootstrap_servers=bootstrap, topic_prefix=prefix)
    await ensure_topics(kafka, topic_specs(kafka))
    await asyncio.sleep(1.0)  # the new partitions' leaders settle
    try:
        return await _sinks(kafka, root, messages, sinks)
    finally:
        await delete_topics(bootstrap, prefix)


async def _sinks(kafka: KafkaConfig, root: Path, messages: list[tuple[str, bytes]], sinks: int) -> float:
    prefix, bootstrap = kafka.topic_prefix, kafka.bootstrap_servers
    await _produce(kafka, TopicNames.from_config(kafka).features["hf"], messages)
    config = root / f"{prefix}.yaml"
    config.write_text(f"kafka:\n  bootstrap_servers: '{bootstrap}'\n  topic_prefix: '{prefix}'\n")
    data = root / prefix
    args = ["--config", str(config), "--root", str(data), "--group-id", f"{prefix}-sink", "--tables", "hf"]
    args += ["--no-raw", "--no-deadletter", "--until-caught-up"]
    processes = [
        ServiceProcess(f"sink-{n}", "sink", args, dict(os.environ), root / f"{prefix}-{n}.log")
        for n in range(sinks)
    ]
    start = time.perf_counter()
    for process in processes:
        process.start()
    codes = [process.wait(600) for process in processes]
    elapsed = time.perf_counter() - start
    if any(codes):
        raise RuntimeError(f"sink exit codes {codes}; logs in {root}")
    rows: int = ds.dataset(data / "hf", format="parquet").count_rows()
    if rows != len(messages):
        raise RuntimeError(f"the sinks wrote {rows} HF rows of {len(messages)}")
    return rows / elapsed


def _pairs(name: str, unit: str, one: list[float], two: list[float]) -> list[Row]:
    a, b = statistics.median(one), statistics.median(two)
    ratios = ", ".join(f"{y / x:.2f}" for x, y in zip(one, two, strict=True))
    return [
        (f"{name}, 1 process", f"{a:,.0f}", unit),
        (f"{name}, 2 processes", f"{b:,.0f}", f"{unit}; 2/1 = {b / a:.2f} (pairs: {ratios})"),
    ]


async def _run(n: int, bootstrap: str) -> list[Row]:
    root = Path(tempfile.mkdtemp(prefix="ffbench-scale-"))
    try:
        engine: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(ROUNDS):
            for workers in (1, 2):
                measured = await measure_throughput(bootstrap, root, n, workers)
                if isinstance(measured, str):
                    return [("scale-out, feature engine", "failed", measured)]
                engine[workers].append(n / measured.busy_s)
        messages = hf_messages(max(n // 4, 1))
        sink: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(ROUNDS):
            for sinks in (1, 2):
                sink[sinks].append(await sink_rate(bootstrap, root, messages, sinks))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return _pairs(
        "scale-out, feature engine workers", "ticks/s, first output to last HF row", engine[1], engine[2]
    ) + _pairs("scale-out, sink processes (hf, 60 s chunks)", "rows/s incl. start-up", sink[1], sink[2])


def run(n: int = 100_000, bootstrap: str | None = None) -> list[Row]:
    address = bootstrap or os.environ.get("FLUXFORGE_KAFKA_BOOTSTRAP") or "127.0.0.1:9092"
    return asyncio.run(_run(n, address))


if __name__ == "__main__":
    print_table(run(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
