"""The issue's end-to-end rows on the reference input (`bench.input_file`), beside its figures before.

`fluxforge run --input` (with the kernel compiled and from source), and the Polars L1 job run as
child processes (start-up included), alternating, and the median of each is reported; decode,
decode + engine and the embedded pipeline are measured in process, on lines already in memory,
with the kernel this process loaded (`fluxforge_common.kernel`).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import orjson
from fluxforge_common import kernel
from fluxforge_common.config import FluxForgeSettings, StateConfig
from fluxforge_common.features import EngineOutput, FeatureEngine
from fluxforge_common.messages import BookTick, DecodedTick, TickerTick, TradeTick, decode_tick
from fluxforge_common.messages.decoding import (
    DEFAULT_MAX_MESSAGE_BYTES,
    MAX_QUANTITY,
    MAX_TS_MS,
    MIN_QUANTITY,
    MIN_TS_MS,
)
from fluxforge_common.pipeline import EmbeddedPipeline, archive_dates, reprocess
from fluxforge_common.pipeline.lines import file_lines
from fluxforge_common.storage.local import LocalStorage
from fluxforge_native import BookDecoder

from bench.input_file import LINES, write_input
from bench.table import Row

ROUNDS = 3


def _timed(command: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def decode_rate(lines: list[bytes]) -> float:
    """Lines/s through decode_tick alone (msgspec decode + validation) on one core."""
    start = time.perf_counter()
    for raw in lines:
        decode_tick(raw)
    return len(lines) / (time.perf_counter() - start)


def parse_rates(lines: list[bytes]) -> tuple[float, float]:
    """Lines/s of the JSON parse alone: (into the envelope structs as `decode_tick` parses: books by
    the native kernel, which checks their values as it reads them, other ticks by msgspec, without
    validation; orjson into dicts, the issue's "decode limit")."""
    books = BookDecoder(BookTick, (MIN_TS_MS, MAX_TS_MS), (MIN_QUANTITY, MAX_QUANTITY))
    decoder = msgspec.json.Decoder(TradeTick | TickerTick)
    start = time.perf_counter()
    for raw in lines:
        if books.decode(raw) is None:
            decoder.decode(raw)
    structs = len(lines) / (time.perf_counter() - start)
    start = time.perf_counter()
    for raw in lines:
        orjson.loads(raw)
    return structs, len(lines) / (time.perf_counter() - start)


def pipeline_rate(lines: list[bytes], root: Path) -> float:
    """Lines/s through `EmbeddedPipeline.run` with the raw archive and every table, into `root`."""
    pipeline = EmbeddedPipeline(FluxForgeSettings(), LocalStorage(root))
    start = time.perf_counter()
    pipeline.run(iter(lines), "bench")
    return len(lines) / (time.perf_counter() - start)


def decode_engine_rate(lines: list[bytes]) -> tuple[float, float]:
    """(lines/s, book updates/s) through decode + engine on one core, as the embedded pipeline
    applies lines: a known symbol's book or trade natively in one call, any other line decoded,
    then applied."""
    books = sum(
        isinstance(item := decode_tick(raw), DecodedTick) and type(item.tick) is BookTick for raw in lines
    )
    engine, out = FeatureEngine(StateConfig()), EngineOutput()
    start = time.perf_counter()
    for n, raw in enumerate(lines):
        if engine.apply_line(raw, DEFAULT_MAX_MESSAGE_BYTES, out) is None and isinstance(
            item := decode_tick(raw), DecodedTick
        ):
            engine.process(item, out)
        if n % 1000 == 0:
            out.clear()
    engine.flush(out)
    elapsed = time.perf_counter() - start
    return len(lines) / elapsed, books / elapsed


def run(lines: int = LINES) -> list[Row]:
    tmp = Path(tempfile.mkdtemp(prefix="ffbench-ref-"))
    try:
        source = write_input(tmp / "reference.ndjson", lines)
        polars_env = {**os.environ, "POLARS_MAX_THREADS": "2"}
        pure_env = {**os.environ, kernel.PURE_ENV: "1"}
        ours: list[float] = []
        pure: list[float] = []
        polars: list[float] = []
        run_input = [sys.executable, "-m", "fluxforge.cli", "run", "--input", str(source), "-q", "-o"]
        for n in range(ROUNDS):
            ours.append(_timed([*run_input, str(tmp / f"run-{n}")]))
            pure.append(_timed([*run_input, str(tmp / f"pure-{n}")], pure_env))
            shutil.rmtree(tmp / f"run-{n}")
            shutil.rmtree(tmp / f"pure-{n}")
            polars.append(
                _timed(
                    [sys.executable, "-m", "bench.polars_reference", str(source), str(tmp / "l1.parquet")],
                    polars_env,
                )
            )
        lines_in_memory = list(file_lines(source))
        parsed, parsed_orjson = parse_rates(lines_in_memory)
        decoded = decode_rate(lines_in_memory)
        per_line, per_book = decode_engine_rate(lines_in_memory)
        embedded = pipeline_rate(lines_in_memory, tmp / "embedded")
        reprocessed = reprocess_rates(tmp / "embedded", tmp / "reprocessed", lines)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ours_rate = lines / statistics.median(ours)
    pure_rate = lines / statistics.median(pure)
    polars_rate = lines / statistics.median(polars)
    return [
        (
            f"fluxforge run --input, {lines:,} lines, 50 symbols (archive + 4 tables)",
            f"{ours_rate:,.0f}",
            f"lines/s, process start to exit, kernel {kernel.choose()} "
            "(before: 19,000-22,000; target >= 100,000)",
        ),
        (
            f"  the same with the kernel from source ({kernel.PURE_ENV}=1)",
            f"{pure_rate:,.0f}",
            f"lines/s; kernel as loaded / from source = {ours_rate / pure_rate:.2f}",
        ),
        (
            "  Polars L1 job on the same file (2 threads)",
            f"{polars_rate:,.0f}",
            f"lines/s (before: ~116,000); fluxforge / Polars = {ours_rate / polars_rate:.2f}",
        ),
        (
            "JSON parse alone: into the envelope structs (books native, others msgspec) / orjson into dicts",
            f"{parsed:,.0f} / {parsed_orjson:,.0f}",
            "lines/s, one core (before: orjson ~525,000): the ceiling of a path making Python objects a line",
        ),
        (
            "decode_tick on the same file (lines in memory)",
            f"{decoded:,.0f}",
            "lines/s, one core (before: ~178,000)",
        ),
        (
            "decode + engine on the same file",
            f"{per_line:,.0f} / {per_book:,.0f}",
            "lines/s / book updates/s, one core (before: ~58,000 lines/s; target >= 300,000 books/s)",
        ),
        (
            "EmbeddedPipeline.run on the same file (archive + 4 tables, in process)",
            f"{embedded:,.0f}",
            "lines/s, one core (before: ~27,000)",
        ),
        (
            "reprocess of its archive, --workers 1 / 2",
            f"{reprocessed[1]:,.0f} / {reprocessed[2]:,.0f}",
            f"lines/s, {ROUNDS - 1} alternating pairs; 2 / 1 = {reprocessed[2] / reprocessed[1]:.2f}",
        ),
    ]


def reprocess_rates(source: Path, target: Path, lines: int) -> dict[int, float]:
    """Median lines/s of `reprocess` of every date in `source`'s archive, per number of workers."""
    settings = FluxForgeSettings()
    dates = archive_dates(LocalStorage(source))
    times: dict[int, list[float]] = {1: [], 2: []}
    for n in range(ROUNDS - 1):
        for workers in times:
            start = time.perf_counter()
            reprocess(settings, source, target / f"{workers}-{n}", dates, workers=workers)
            times[workers].append(time.perf_counter() - start)
    return {workers: lines / statistics.median(elapsed) for workers, elapsed in times.items()}
