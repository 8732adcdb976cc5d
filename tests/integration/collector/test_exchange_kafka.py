"""`fluxforge collect --exchange` and `fluxforge run --source exchange` against the Binance emulator.

The collector publishes through ccxt.pro to a real broker and is stopped by
SIGTERM: every envelope the source handed over is on the raw topic once, in
order per symbol, and each book equals the emulator's true book at its update id.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest
import yaml
from fluxforge_collector.launch import CollectOptions, make_collector, publish
from fluxforge_common.config import FluxForgeSettings
from fluxforge_common.kafka import TopicNames
from fluxforge_emulator import EmulatorThread

from tests.support.exchange import Run, check_published, exchange_config

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.support.kafka import KafkaPrefix

pytestmark = pytest.mark.integration


def test_collect_exchange_publishes_every_tick_once_and_sigterm_flushes(
    kafka_prefix: KafkaPrefix, emulator: EmulatorThread
) -> None:
    base = kafka_prefix.settings(batch_max_ticks=50)
    settings = FluxForgeSettings(kafka=base.kafka, exchanges={"binanceus": exchange_config(emulator)})
    collector = make_collector(settings, CollectOptions(exchange="binanceus"))
    source_stats = collector.source.stats  # type: ignore[attr-defined]
    finished = threading.Event()

    def sigterm_once_collecting() -> None:
        """SIGTERM once the source has handed over a few hundred ticks (a slow start takes seconds)."""
        deadline = time.monotonic() + 60
        while source_stats.books + source_stats.trades + source_stats.tickers < 300:
            if finished.wait(0.1) or time.monotonic() > deadline:
                break
        if not finished.is_set():
            os.kill(os.getpid(), signal.SIGTERM)

    stopper = threading.Thread(target=sigterm_once_collecting, daemon=True)
    stopper.start()
    try:
        stats = publish(collector, settings)
    finally:
        finished.set()
        stopper.join()
    handed_over = source_stats.books + source_stats.trades + source_stats.tickers
    assert stats.ticks_out == stats.accepted == handed_over > 100  # SIGTERM published all it had
    assert stats.dead_lettered == 0

    records = kafka_prefix.read(TopicNames.from_config(settings.kafka).raw)
    ticks: list[bytes] = []
    per_key: dict[bytes, list[dict[str, Any]]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        for raw in record.ticks():
            ticks.append(raw)
            tick = orjson.loads(raw)
            assert record.key == f"{tick['exchange']}:{tick['symbol']}".encode()
            per_key.setdefault(record.key, []).append(tick)
    assert len(ticks) == handed_over
    for key, items in per_key.items():  # per symbol: books in update order, trades in id order
        seqs = [t["seq"] for t in items if t["type"] == "book"]
        assert seqs == sorted(set(seqs)), key
    run = Run([(0.0, orjson.loads(raw)) for raw in ticks], ticks, source_stats, None)
    counts = check_published(emulator, run)
    print(
        f"\n[collect --exchange through Kafka] {counts}, {stats.batches_out} batches, SIGTERM after 300 ticks"
    )


def test_run_source_exchange_writes_a_dataset(
    emulator: EmulatorThread, tmp_path: Path, cli: Callable[..., str]
) -> None:
    config = exchange_config(emulator).model_dump()
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"exchanges": {"binanceus": config}}))
    out = tmp_path / "data"
    output = cli("run", "--config", path, "--source", "exchange", "--exchange", "binanceus",
                 "--events", "400", "-o", out, "--quiet")  # fmt: skip
    assert "hf" in output
    raw_files = list((out / "raw" / "exchange=binanceus").rglob("*.ndjson*"))
    assert raw_files, output
    assert list((out / "hf").rglob("*.parquet")), output
    assert json.dumps(config)  # the config is plain data (no credentials in it)


def test_run_of_an_exchange_that_cannot_be_watched_exits_1(
    emulator: EmulatorThread, tmp_path: Path, cli: Callable[..., str]
) -> None:
    config = exchange_config(emulator).model_dump() | {"symbols": ["NOPE/USDT"]}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"exchanges": {"binanceus": config}}))
    output = cli(
        "run", "--config", path, "--exchange", "binanceus", "-o", tmp_path / "data", "-q", expect_exit=1
    )
    assert "binanceus lists none of the configured symbols ['NOPE/USDT']" in output
