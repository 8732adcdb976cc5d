"""Live collection rate: the Binance emulator (50 symbols, its own process) -> ccxt.pro -> collector -> Kafka.

The emulator runs as `python -m fluxforge_emulator` in a subprocess
(so its CPU is not the collector's) and offers ~27,000 frames/s: one depth
diff per book change (as Binance's raw diff stream, ~1.2 levels each), the
trades, and a 24h ticker now and then. The collector runs in this process
exactly as `fluxforge collect --exchange` does. After a warm-up (50 REST
snapshots under ccxt's rate limiter), a sampler thread reads over a window
the frames the emulator sent, the envelopes Kafka acknowledged and this
process's CPU time. Frames are the exchange's messages; every one becomes an
envelope (each book update, each trade) unless the collector falls behind,
which the last row shows: book states left out, trade ids skipped.
`python -m bench.collector_exchange` runs it alone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from typing import Any

import orjson
from fluxforge_collector.collector import Collector, CollectorStats
from fluxforge_collector.exchange import exchange_source
from fluxforge_collector.launch import CollectorError, publish
from fluxforge_common.config import ExchangeConfig, FluxForgeSettings, KafkaConfig

from bench.collector import _bootstrap, delete_topics
from bench.table import Row, print_table

SYMBOLS = [f"S{i:02d}/USDT" for i in range(50)]
WARMUP_S = 20.0  # 50 snapshots under ccxt's rate limiter, then a steady state
WINDOW_S = 15.0
EVENTS_PER_S_PER_SYMBOL = 500.0
SYMBOLS_PER_WATCH = 50


def _start_emulator() -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fluxforge_emulator", "--symbols", ",".join(SYMBOLS),
         "--rate", str(EVENTS_PER_S_PER_SYMBOL), "--ping-interval", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError("the emulator did not start")
    return proc, orjson.loads(line)


def _frames_sent(control: str) -> int:
    with urllib.request.urlopen(f"{control}/stats", timeout=5) as reply:
        return int(orjson.loads(reply.read())["frames"])


def measure(bootstrap: str, symbols_per_watch: int = SYMBOLS_PER_WATCH) -> dict[str, float]:
    proc, info = _start_emulator()
    prefix = f"ffbench-{uuid.uuid4().hex[:8]}"
    samples: list[tuple[float, int, float, int]] = []  # (wall, envelopes acknowledged, CPU time, frames)
    try:
        exchange = ExchangeConfig(
            symbols=SYMBOLS,
            urls=info["urls"],
            options={**info["options"], "watchOrderBookLimit": 100},
            symbols_per_watch=symbols_per_watch,
        )
        settings = FluxForgeSettings(
            kafka=KafkaConfig(bootstrap_servers=bootstrap, topic_prefix=prefix),
            exchanges={"binanceus": exchange},
        )
        acked = [0]

        def sample(stats: CollectorStats) -> None:
            acked[0] = stats.ticks_out

        def sampler() -> None:
            """Samples the emulator's frame count from a thread: an HTTP call in the collector's loop would stall it."""
            deadline = time.monotonic() + WARMUP_S + WINDOW_S
            while (now := time.monotonic()) < deadline:
                if now >= deadline - WINDOW_S:
                    samples.append((now, acked[0], time.process_time(), _frames_sent(info["control"])))
                time.sleep(1.0)
            os.kill(os.getpid(), signal.SIGTERM)

        source = exchange_source(settings, "binanceus")
        collector = Collector(settings, source, on_progress=sample)
        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        publish(collector, settings)
    finally:
        proc.terminate()
        proc.wait(10)
        asyncio.run(delete_topics(bootstrap, prefix))
    if len(samples) < 3:
        raise RuntimeError(f"only {len(samples)} samples in the measuring window")
    first, last = samples[0], samples[-1]
    wall = last[0] - first[0]
    frames = (last[3] - first[3]) / wall
    cpu = (last[2] - first[2]) / wall
    return {
        "frames": frames,
        "envelopes": (last[1] - first[1]) / wall,
        "cpu_cores": cpu,
        "cpu_per_1000": cpu / (frames / 1000) if frames else float("nan"),
        "books": source.stats.books,
        "trades": source.stats.trades,
        "tickers": source.stats.tickers,
        "trade_id_gaps": source.stats.trade_id_gaps,
        "resyncs": sum(source.stats.resyncs.values()),
        "books_conflated": source.stats.books_conflated,
    }


def run(n: int = 0) -> list[Row]:
    bootstrap = _bootstrap()
    try:
        r = measure(bootstrap)
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
            f"{r['frames']:,.0f}",
            f"exchange frames/s taken by one process (target 20,000); {r['envelopes']:,.0f} envelopes/s acknowledged",
        ),
        (
            "collector CPU per 1,000 frames/s (ccxt.pro + collector)",
            f"{r['cpu_per_1000']:.3f}",
            f"cores ({r['cpu_cores']:.2f} cores busy at that rate)",
        ),
        (
            "collector, what fell behind at that rate",
            f"{r['books_conflated'] + r['trade_id_gaps']:,}",
            f"book states conflated {r['books_conflated']:,} of {r['books']:,}; trade ids skipped "
            f"{r['trade_id_gaps']:,} of {r['trades']:,}; resyncs {r['resyncs']}",
        ),
    ]


if __name__ == "__main__":
    print_table(run())
