"""Live collection rate: the Binance emulator (50 symbols, its own process) -> ccxt.pro -> collector -> Kafka.

The emulator runs as `python -m fluxforge_collector.emulator` in a subprocess
(so its CPU is not the collector's), serving a market fast enough to saturate
the collector (on 2 cores it tops out first: see the CPU row). The collector runs in this process exactly as `fluxforge
collect --exchange` does; after every book is synchronised, it is measured
over a window: envelopes acknowledged by Kafka per second, and this
process's CPU time per second of wall time, divided by that rate / 1,000
(CPU cores needed per 1,000 msgs/s). `python -m bench.collector_exchange`
runs it alone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import orjson
from fluxforge_collector.collector import Collector, CollectorStats
from fluxforge_collector.exchange import exchange_source
from fluxforge_collector.launch import CollectorError, publish
from fluxforge_common.config import ExchangeConfig, FluxForgeSettings, KafkaConfig

from bench.collector import _bootstrap, _delete_topics
from bench.table import Row, print_table

SYMBOLS = [f"S{i:02d}/USDT" for i in range(50)]
WARMUP_S = 20.0  # 50 snapshots under ccxt's rate limiter, then a steady state
WINDOW_S = 15.0
EVENTS_PER_S_PER_SYMBOL = 2_000.0  # market time at speed 1: far more than one collector takes


def _start_emulator() -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fluxforge_collector.emulator", "--symbols", ",".join(SYMBOLS),
         "--rate", str(EVENTS_PER_S_PER_SYMBOL), "--ping-interval", "5", "--merge-depth"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError("the emulator did not start")
    return proc, orjson.loads(line)


def measure(bootstrap: str) -> dict[str, float]:
    proc, info = _start_emulator()
    prefix = f"ffbench-{uuid.uuid4().hex[:8]}"
    samples: list[tuple[float, int, float]] = []
    try:
        exchange = ExchangeConfig(
            symbols=SYMBOLS,
            urls=info["urls"],
            options={**info["options"], "watchOrderBookLimit": 100},
        )
        settings = FluxForgeSettings(
            kafka=KafkaConfig(bootstrap_servers=bootstrap, topic_prefix=prefix),
            exchanges={"binanceus": exchange},
        )

        def sample(stats: CollectorStats) -> None:
            samples.append((time.monotonic(), stats.ticks_out, time.process_time()))

        collector = Collector(settings, exchange_source(settings, "binanceus"), on_progress=sample)
        timer = threading.Timer(WARMUP_S + WINDOW_S, os.kill, (os.getpid(), signal.SIGTERM))
        timer.start()
        try:
            publish(collector, settings)
        finally:
            timer.cancel()
    finally:
        proc.terminate()
        proc.wait(10)
        asyncio.run(_delete_topics(bootstrap, prefix))
    window = [s for s in samples if s[0] >= samples[0][0] + WARMUP_S] if samples else []
    if len(window) < 3:
        raise RuntimeError(f"only {len(window)} progress samples in the measuring window")
    first, last = window[0], window[-1]
    wall = last[0] - first[0]
    rate = (last[1] - first[1]) / wall
    cpu = (last[2] - first[2]) / wall
    return {"rate": rate, "cpu_cores": cpu, "cpu_per_1000": cpu / (rate / 1000) if rate else float("nan")}


def run(n: int = 0) -> list[Row]:
    bootstrap = _bootstrap()
    try:
        result = measure(bootstrap)
    except CollectorError as exc:
        return [
            (
                "collector, exchange emulator -> Kafka",
                "skipped",
                f"no Kafka broker at {bootstrap}: {exc}"[:160],
            )
        ]
    return [
        (
            "collector, ccxt.pro <- Binance emulator (50 symbols) -> Kafka",
            f"{result['rate']:,.0f}",
            "envelopes/s acknowledged, one process (bound by the emulator when CPU below is < 1 core)",
        ),
        (
            "collector CPU per 1,000 envelopes/s (ccxt.pro + collector)",
            f"{result['cpu_per_1000']:.3f}",
            f"cores ({result['cpu_cores']:.2f} cores busy at that rate)",
        ),
    ]


if __name__ == "__main__":
    print_table(run())
