"""SIGTERM to `fluxforge run` and `fluxforge reprocess` as real child processes, at seeded random moments.

A stopped run must exit 0 with every table written and the raw archive sealed,
and hold exactly the rows of an uninterrupted run over the same input span:
`fluxforge run --events N` of the same input, N being the lines the stopped
run reports it read. A second signal, or the stop deadline, exits at once
(status 1) leaving only whole files.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from fluxforge_common.config.state import StateConfig
from fluxforge_common.dataset.interrupted import find_interrupted
from fluxforge_common.features import output_tables
from fluxforge_common.pipeline import archive_dates, archive_lines, simulator_lines
from fluxforge_common.simulator import SimulatorConfig
from fluxforge_common.storage.local import LocalStorage
from fluxforge_common.writers import iter_ndjson
from fluxforge_emulator import EmulatorThread

from tests.support.dataset import assert_same_dataset, read_dataset
from tests.support.exchange import exchange_config
from tests.support.signals import seeded_rng, two_stop_signals_at_once, wait_for_text, wait_until

FLUXFORGE = Path(sys.executable).with_name("fluxforge")
MOMENTS = 3
EXIT_TIMEOUT_S = 120.0
SEED = 5


def start(
    args: list[object], log: Path, env: dict[str, str] | None = None, *, stdin: int | None = None
) -> subprocess.Popen[bytes]:
    """`fluxforge ARGS` with stdout and stderr into `log`."""
    assert FLUXFORGE.exists(), f"{FLUXFORGE}: the workspace is not installed (uv sync)"
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(FLUXFORGE), *map(str, args)],
            stdin=stdin,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )


def lines_read(log: Path) -> int:
    match = re.search(r"Read ([\d,]+) raw ticks", log.read_text())
    assert match, log.read_text()[-3000:]
    return int(match.group(1).replace(",", ""))


def temporaries(root: Path) -> list[str]:
    return [name for _, _, names in os.walk(root) for name in names if name.startswith(".tmp-")]


def sigterm(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)


def exit_code_when_signalled(
    proc: subprocess.Popen[bytes],
    log: Path,
    delay: float,
    *,
    ready: str = "fluxforge run:",
    sealed_under: Path | None = None,
    send: Callable[[subprocess.Popen[bytes]], None] = sigterm,
) -> int:
    """`send` the signal(s) `delay` s after `ready` shows in the log (and, given `sealed_under`, after the
    run has sealed its first raw segment there); the exit code (killed if anything fails)."""
    try:
        wait_for_text(log, ready, proc)
        if sealed_under is not None:
            wait_until(
                lambda: bool(LocalStorage(sealed_under).list_files("raw/")), "a sealed raw segment", proc, log
            )
        time.sleep(delay)
        send(proc)
        return proc.wait(timeout=EXIT_TIMEOUT_S)
    finally:
        proc.kill()


def assert_stopped_cleanly(exit_code: int, log: Path, root: Path, sig: str) -> int:
    """Exit 0 after the graceful stop, the raw archive sealed, every table written; the lines read."""
    assert exit_code == 0, log.read_text()[-3000:]
    assert f"{sig}: stopping" in log.read_text()
    assert temporaries(root) == [], "a segment or file was left open"
    storage = LocalStorage(root)
    for table in [*output_tables(StateConfig()), "raw"]:  # the tables the default config fills
        assert storage.list_files(f"{table}/"), f"{table}: nothing written"
    return lines_read(log)


def test_sigterm_to_a_simulator_run_writes_the_rows_of_the_lines_it_read(
    tmp_path: Path, cli: Callable[..., str]
) -> None:
    rng = seeded_rng("signal moments")
    for moment in range(MOMENTS):
        root, log = tmp_path / f"stopped{moment}", tmp_path / f"run{moment}.log"
        proc = start(["run", "-o", root, "--seed", SEED, "--duration", 100_000], log)
        delay = rng.uniform(0.3, 4.0)
        n = assert_stopped_cleanly(exit_code_when_signalled(proc, log, delay), log, root, "SIGTERM")
        print(f"SIGTERM {delay:.2f} s after the start: {n:,} lines read")
        reference = tmp_path / f"reference{moment}"
        cli("run", "-o", reference, "--seed", SEED, "--events", n, "-q")
        assert_same_dataset(root, reference)
        stopped_archive = list(archive_lines(LocalStorage(root)))
        assert len(stopped_archive) == len(list(archive_lines(LocalStorage(reference))))


def test_sigterm_to_a_run_reading_a_slow_pipe_writes_the_rows_of_the_lines_it_read(
    tmp_path: Path, cli: Callable[..., str]
) -> None:
    """A writer that trickles lines in: the stop mostly finds the run waiting on its input."""
    lines = list(itertools.islice(simulator_lines(SimulatorConfig(seed=SEED)), 80_000))
    source = tmp_path / "input.ndjson"
    source.write_bytes(b"\n".join(lines) + b"\n")
    rng = seeded_rng("signal moments")
    for moment in range(MOMENTS):
        root, log = tmp_path / f"stopped{moment}", tmp_path / f"run{moment}.log"
        proc = start(["run", "--input", "-", "-o", root], log, stdin=subprocess.PIPE)
        writer = threading.Thread(target=trickle, args=(proc, lines), daemon=True)
        writer.start()
        delay = rng.uniform(0.5, 3.0)
        try:
            exit_code = exit_code_when_signalled(proc, log, delay)
        finally:
            writer.join(timeout=EXIT_TIMEOUT_S)
        n = assert_stopped_cleanly(exit_code, log, root, "SIGTERM")
        print(f"SIGTERM {delay:.2f} s after the start: {n:,} of {len(lines):,} lines read")
        assert 0 < n < len(lines), "the stop must land while the input is still arriving"
        reference = tmp_path / f"reference{moment}"
        cli("run", "--input", source, "--events", n, "-o", reference, "-q")
        assert_same_dataset(root, reference)


def trickle(proc: subprocess.Popen[bytes], lines: list[bytes]) -> None:
    """Write `lines` to the child's stdin 400 at a time, 20 ms apart, until it is done or gone."""
    assert proc.stdin is not None
    try:
        for start_at in range(0, len(lines), 400):
            proc.stdin.write(b"\n".join(lines[start_at : start_at + 400]) + b"\n")
            proc.stdin.flush()
            time.sleep(0.02)
        proc.stdin.close()
    except (BrokenPipeError, ValueError):
        pass


def assert_only_whole_files(root: Path) -> int:
    """Every visible file of the dataset reads back whole; the number of files."""
    storage = LocalStorage(root)
    files = storage.list_files()
    for path in files:
        if path.endswith(".parquet"):
            pq.read_table(root / path)
        else:
            assert list(iter_ndjson(storage, path)), path
    return len(files)


# Rows are written every second and raw segments sealed every 60 s of market time while the run goes
# on; what is still buffered at the stop is what a forced exit does not write. The signals wait for the
# first sealed segment, which a slow machine may take longer than a few seconds to reach.
WRITE_AS_YOU_GO = {
    "FLUXFORGE_EMBEDDED__FLUSH_INTERVAL_S": "1",
    "FLUXFORGE_RAW_ARCHIVE__SEGMENT_MAX_AGE_S": "60",
}


def test_a_second_signal_exits_at_once_leaving_only_whole_files(tmp_path: Path) -> None:
    rng = seeded_rng("signal moments")
    root, log = tmp_path / "stopped", tmp_path / "run.log"
    proc = start(["run", "-o", root, "--duration", 100_000], log, WRITE_AS_YOU_GO)
    exit_code = exit_code_when_signalled(
        proc, log, rng.uniform(0.0, 2.0), sealed_under=root, send=lambda p: two_stop_signals_at_once(p.pid)
    )
    assert exit_code == 1, log.read_text()[-3000:]
    output = log.read_text()
    # Python runs pending handlers in signal order, mostly SIGINT's first; either way one stops, one forces.
    first = re.search(r"(SIGINT|SIGTERM): stopping", output)
    assert first is not None, output[-3000:]
    other = {"SIGINT": "SIGTERM", "SIGTERM": "SIGINT"}[first.group(1)]
    assert f"second {other}: exiting now" in output, output[-3000:]
    assert f"`fluxforge recover {root}` seals it" in output, "what to do next"
    assert "Dataset written" not in output, "the forced exit must not have finished the graceful stop"
    print(f"{assert_only_whole_files(root)} whole files left by the forced exit")
    assert LocalStorage(root).list_files("raw/"), "segments sealed before the stop must stay"


def test_the_stop_deadline_exits_at_once_leaving_only_whole_files(tmp_path: Path) -> None:
    rng = seeded_rng("signal moments")
    root, log = tmp_path / "stopped", tmp_path / "run.log"
    env = {**WRITE_AS_YOU_GO, "FLUXFORGE_EMBEDDED__STOP_DEADLINE_S": "0.001"}
    proc = start(["run", "-o", root, "--duration", 100_000], log, env)
    exit_code = exit_code_when_signalled(proc, log, rng.uniform(0.0, 2.0), sealed_under=root)
    assert exit_code == 1, log.read_text()[-3000:]
    output = log.read_text()
    assert "stop deadline: exiting now" in output and f"`fluxforge recover {root}` seals it" in output, (
        output[-3000:]
    )
    print(f"{assert_only_whole_files(root)} whole files left by the forced exit")
    assert LocalStorage(root).list_files("raw/"), "segments sealed before the stop must stay"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_to_reprocess_writes_what_it_processed_and_replaces_nothing(
    tmp_path: Path, cli: Callable[..., str], workers: str
) -> None:
    """Stopped early, reprocess keeps the earlier files (the date holds old and new rows until a rerun);
    split over processes, the parent hands the stop to each."""
    root = tmp_path / "root"
    # ~356,000 ticks of 2025-12-12: ~2 s of reading here, 4x the latest signal moment below.
    cli("run", "-o", root, "--seed", SEED, "--duration", 3600, "-q")
    storage = LocalStorage(root)
    earlier = set(storage.list_files("hf/"))
    rng = seeded_rng("signal moments")
    log = tmp_path / "reprocess.log"
    proc = start(["reprocess", "--source-root", root, "--date", "2025-12-12", "--workers", workers], log)
    # Once it says what it reprocesses, its stop handling is in place: reading begins.
    exit_code = exit_code_when_signalled(proc, log, rng.uniform(0.0, 0.5), ready="Reprocessing 2025-12-12")
    assert exit_code == 0, log.read_text()[-3000:]
    output = log.read_text()
    assert "SIGTERM: stopping" in output and "Stopped before the end" in output, output[-3000:]
    assert lines_read(log) < len(list(archive_lines(storage)))
    assert earlier <= set(storage.list_files("hf/")), "an earlier file was replaced by a partial reprocess"
    assert temporaries(root) == []
    assert find_interrupted(root).dates == ["2025-12-12"]  # left for the next recovery, or a rerun
    cli("reprocess", "--source-root", root, "--date", "2025-12-12", "-q")
    assert not find_interrupted(root)
    reference = tmp_path / "reference"
    cli("run", "--input", root / "raw", "-o", reference, "-q")
    assert_same_dataset(root, reference)


def test_sigterm_to_a_live_recording_prints_the_sources_counts(
    tmp_path: Path, emulator: EmulatorThread
) -> None:
    """Reconnects, resyncs, conflated books and unrecoverable trades are counted: `run -x` says them."""
    root, log = tmp_path / "data", tmp_path / "run.log"
    config, exchange = tmp_path / "config.yaml", exchange_config(emulator)
    config.write_bytes(orjson.dumps({"exchanges": {"binanceus": exchange.model_dump(mode="json")}}))
    proc = start(["run", "-x", "binanceus", "--config", config, "-o", root], log)
    symbols = len(exchange.symbols)

    def once_every_book_is_synced(p: subprocess.Popen[bytes]) -> None:
        """A second after the emulator answered every symbol's snapshot: a fixed delay after start-up
        can end before ccxt has loaded markets and synced a book on a loaded machine."""
        wait_until(
            lambda: emulator.call(lambda e: e.stats.snapshots) >= symbols, "every symbol's snapshot", p, log
        )
        time.sleep(1.0)
        sigterm(p)

    exit_code = exit_code_when_signalled(proc, log, 0.0, send=once_every_book_is_synced)
    text = log.read_text()
    assert exit_code == 0, text[-3000:]
    counts = re.search(
        r"exchange:binanceus: books ([\d,]+), trades ([\d,]+).*resyncs \d+.*unrecoverable \d+", text
    )
    assert counts, text[-3000:]
    assert int(counts.group(1).replace(",", "")) > 0


@pytest.mark.parametrize("command", ["recover", "run"])
def test_sigterm_during_a_recovery_ends_it_cleanly_and_the_next_one_finishes_it(
    tmp_path: Path, cli: Callable[..., str], command: str
) -> None:
    """`fluxforge recover`, or `fluxforge run` recovering its root first (a recorder service
    restarted into its root, then stopped): exit 0 saying what is left, and the next recovery
    completes it, no row doubled."""
    root = tmp_path / "data"
    cli("run", "-o", root, "--seed", SEED, "--duration", 1800, "-q")
    expected = read_dataset(root)
    (date,) = archive_dates(LocalStorage(root))
    (root / ".runs").mkdir(exist_ok=True)
    (root / ".runs" / "1765497600000-deadbeef.dates").write_text(f"{date}\n")  # what a killed run leaves
    before = set(root.rglob("*.parquet"))
    source = tmp_path / "more.ndjson"
    source.write_bytes(b"\n".join(itertools.islice(simulator_lines(SimulatorConfig(seed=9)), 10)) + b"\n")
    # `run` into the same root, as a restarted recorder would: it recovers the root first.
    args = ["recover", root] if command == "recover" else ["run", "--input", source, "-o", root]
    log = tmp_path / "stopped.log"
    proc = start(args, log, {"FLUXFORGE_EMBEDDED__FLUSH_INTERVAL_S": "0.2"})  # files while it reads
    try:
        deadline = time.monotonic() + EXIT_TIMEOUT_S
        while not set(root.rglob("*.parquet")) - before:  # the rebuild has written a first file
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.01)
        sigterm(proc)
        exit_code = proc.wait(timeout=EXIT_TIMEOUT_S)
    finally:
        proc.kill()
    output = log.read_text()
    assert exit_code == 0, output[-3000:]
    assert "SIGTERM: stopping" in output and f"Recovery of {root} stopped before the end" in output, output
    assert f"`fluxforge recover {root}` runs to the end" in output
    cli("recover", root, "-q")
    rebuilt = read_dataset(root)
    assert all(rebuilt[table].equals(rows) for table, rows in expected.items()), "not the recording's rows"
