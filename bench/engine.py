"""Engine, writer and embedded-pipeline rates on simulated input (generation not timed)."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fluxforge_common.config import FluxForgeSettings, StateConfig
from fluxforge_common.features import EngineOutput, FeatureEngine, SymbolState, table_schema
from fluxforge_common.messages import decode_tick
from fluxforge_common.messages.decoded import DecodedTick
from fluxforge_common.messages.decoding import DEFAULT_MAX_MESSAGE_BYTES
from fluxforge_common.pipeline import EmbeddedPipeline
from fluxforge_common.simulator import MarketSimulator, SimulatorConfig
from fluxforge_common.storage.local import LocalStorage
from fluxforge_common.writers.parquet import PartitionedParquetWriter
from fluxforge_native import ReadRows

from bench.input_file import reference_config
from bench.table import Row


def simulated(n: int, *, trade_share: float, ticker_share: float) -> list[bytes]:
    cfg = SimulatorConfig(seed=99, trade_share=trade_share, ticker_share=ticker_share)
    return list(itertools.islice(MarketSimulator(cfg).ticks(), n))


@dataclass(frozen=True)
class EngineRun:
    rate: float  # ticks/s
    engine: FeatureEngine  # flushed
    hf: list[ReadRows]  # as each hand-off gives them to the HF writer
    state_bytes: list[int]  # per symbol, serialised before the final flush, without its held ticks
    held: list[int]  # per symbol, ticks held for the allowed lateness at that point
    held_bytes: list[int]  # per symbol, what those ticks add to the serialised state


def engine_rate(lines: list[bytes]) -> EngineRun:
    """Ticks/s through decode + validate + engine on one core, as the embedded pipeline applies
    them: a known symbol's book natively in one call, any other line decoded, then applied.

    Rows are handed off every 10,000 ticks, as the pipeline hands them to its
    writers; the HF rows are kept aside for the Parquet measurement. The states
    are measured, untimed, before the final flush applies their held ticks.
    """
    engine = FeatureEngine(StateConfig())
    out = EngineOutput()
    hf: list[ReadRows] = []
    start = time.perf_counter()
    for n, raw in enumerate(lines):
        applied = engine.apply_line(raw, DEFAULT_MAX_MESSAGE_BYTES, out)
        if applied is None and isinstance(item := decode_tick(raw), DecodedTick):
            engine.process(item, out)
        if n % 10_000 == 0:
            hand_off(out, hf)
    elapsed = time.perf_counter() - start
    held, held_bytes, state_bytes = [], [], []
    for state in engine.states.values():
        whole = state.to_bytes()
        copy = SymbolState.from_bytes(whole, engine.cfg)  # the state itself keeps its held books native
        held.append(len(copy.held))
        copy.core.held = []
        state_bytes.append(len(copy.to_bytes()))
        held_bytes.append(len(whole) - state_bytes[-1])
    start = time.perf_counter()
    engine.flush(out)
    hand_off(out, hf)
    elapsed += time.perf_counter() - start
    return EngineRun(len(lines) / elapsed, engine, hf, state_bytes, held, held_bytes)


def hand_off(out: EngineOutput, hf: list[ReadRows]) -> None:
    """Take the rows out of `out`, keeping the HF rows as the embedded pipeline gives them to its writer."""
    rows = out.hf.read_rows()
    if rows is not None:
        hf.append(rows)
    out.clear()


def run(n: int) -> list[Row]:
    rows: list[Row] = []
    books = simulated(n, trade_share=0.0, ticker_share=0.0)
    rate = engine_rate(books).rate
    rows.append(
        (
            "engine, books only (10 levels, decode included)",
            f"{rate:,.0f}",
            "book updates/s, one core (target >= 300,000)",
        )
    )
    mixed = simulated(n, trade_share=0.15, ticker_share=0.05)
    measured = engine_rate(mixed)
    engine, hf_rows, sizes = measured.engine, measured.hf, measured.state_bytes
    rows.append(("engine, 80% books / 15% trades / 5% tickers", f"{measured.rate:,.0f}", "ticks/s, one core"))
    rows.append(
        (
            "symbol state, serialised mid-stream, without its held ticks (mean / max)",
            f"{sum(sizes) / len(sizes):,.0f} / {max(sizes):,}",
            "bytes per symbol (target < 8,192)",
        )
    )
    rows.append(
        (
            "  beside it, the ticks held for the allowed lateness (max)",
            f"{max(measured.held)} / {max(measured.held_bytes):,}",
            f"ticks / bytes per symbol (the last {StateConfig().allowed_lateness_ms} ms of its event time)",
        )
    )
    start = time.perf_counter()
    restored = 0
    for state in engine.states.values():
        for _ in range(200):
            type(state).from_bytes(state.to_bytes(), StateConfig())
            restored += 1
    rows.append(
        (
            "symbol state round trip (to_bytes + from_bytes)",
            f"{restored / (time.perf_counter() - start):,.0f}",
            "round trips/s",
        )
    )

    tmp = Path(tempfile.mkdtemp(prefix="ffbench-"))
    try:
        produced = sum(map(len, hf_rows))
        hf = hf_rows * max(1, 50_000 // max(1, produced))
        schema = table_schema("hf", StateConfig())
        writer = PartitionedParquetWriter(LocalStorage(tmp), "hf", schema)
        start = time.perf_counter()
        for batch in hf:
            assert writer.add_read(batch) is not None, "the HF writer takes the engine's cells"
        writer.flush()
        written = sum(map(len, hf))
        rows.append(
            (
                "Parquet write, hf rows as the pipeline adds them (cells; zstd, fsync)",
                f"{written / (time.perf_counter() - start):,.0f}",
                f"rows/s ({written:,} rows of {len(schema)} columns)",
            )
        )
        settings = FluxForgeSettings()
        pipeline = EmbeddedPipeline(settings, LocalStorage(tmp / "embedded"))
        start = time.perf_counter()
        summary = pipeline.run(iter(mixed), "bench")
        elapsed = time.perf_counter() - start
        rows.append(
            (
                "embedded pipeline end to end (archive + 4 tables)",
                f"{summary.lines / elapsed:,.0f}",
                "ticks/s, one core",
            )
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


# Runs argv[1:] with stdout discarded, prints its peak RSS (KiB) and exits with its status.
_PEAK_RSS_LAUNCHER = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "print(usage.ru_maxrss)\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_process_memory(duration_s: int = 3600) -> list[Row]:
    """Peak RSS of a real `fluxforge run` (simulator, the reference input's 50 symbols) as a child process."""
    tmp = Path(tempfile.mkdtemp(prefix="ffbench-mem-"))
    try:
        config = tmp / "config.yaml"
        config.write_text(
            json.dumps({"simulator": reference_config().model_dump(mode="json")})
        )  # JSON is YAML
        start = time.perf_counter()
        # Measured by a small launcher process: a child forked straight from this (large) benchmark
        # process counts the parent's pages in its peak RSS until it execs.
        launcher = subprocess.run(
            [sys.executable, "-c", _PEAK_RSS_LAUNCHER, sys.executable, "-m", "fluxforge.cli",
             "run", "-c", str(config), "-o", str(tmp / "out"), "--duration", str(duration_s), "-q"],
            check=True,
            capture_output=True,
            text=True,
        )  # fmt: skip
        elapsed = time.perf_counter() - start
        peak_mib = int(launcher.stdout.split()[-1]) / 1024
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [
        (
            f"fluxforge run, {duration_s} s of market, 50 symbols (target: peak < 300 MiB)",
            f"{elapsed:,.1f}",
            "s wall (process start to exit)",
        ),
        ("  its peak resident memory", f"{peak_mib:,.0f}", "MiB"),
    ]
