"""`kill -9` of `fluxforge run` (a paced simulated market on stdin; a live exchange, the emulator)
at random moments, then a restart into the same root: every tick that reached a durable raw frame
is archived once and in order, and the feature tables equal a `fluxforge reprocess` of that archive."""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
from fluxforge_common.config.settings import FluxForgeSettings
from fluxforge_common.pipeline import archive_dates, archive_lines, simulator_lines
from fluxforge_common.pipeline.ingest_order import ingest_key
from fluxforge_common.storage import LocalStorage
from fluxforge_common.writers.frames import intact_prefix, whole_cuts
from fluxforge_emulator import EmulatorThread

from tests.support.dataset import assert_same_dataset
from tests.support.exchange import SYMBOLS, exchange_config

KILLS = 10  # the issue asks for ten random kill moments in one test
LINES_PER_S = 4000  # the pace of the input, so that a kill lands while ticks are arriving
CHUNK = 40
SYNC_INTERVAL_S = "0.2"


def unpaced(line: bytes) -> bytes:
    """A line as the archive holds it, without the ingest stamp the run adds."""
    obj = orjson.loads(line)
    obj.pop("_ingest", None)
    return orjson.dumps(obj)


class KilledRun:
    """`fluxforge run ARGS` as a child process; with `lines`, fed them on stdin at LINES_PER_S from a
    thread until killed."""

    def __init__(self, args: list[str], log: Path, lines: Iterator[bytes] | None = None) -> None:
        env = {**os.environ, "FLUXFORGE_RAW_ARCHIVE__SYNC_INTERVAL_S": SYNC_INTERVAL_S}
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fluxforge.cli", "run", *args, "-q"],
            stdin=subprocess.PIPE if lines is not None else subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            env=env,
        )
        self.sent: list[bytes] = []
        self._feeder: threading.Thread | None = None
        if lines is not None:
            self._feeder = threading.Thread(target=self._feed, args=(lines,), daemon=True)
            self._feeder.start()

    def _feed(self, lines: Iterator[bytes]) -> None:
        assert self.proc.stdin is not None
        try:
            for chunk in iter(lambda: list(itertools.islice(lines, CHUNK)), []):
                self.proc.stdin.write(b"".join(line + b"\n" for line in chunk))
                self.proc.stdin.flush()
                self.sent.extend(chunk)  # written to the pipe: the run may have read it
                time.sleep(CHUNK / LINES_PER_S)
        except (BrokenPipeError, ValueError):
            return  # killed

    def kill9(self) -> list[bytes]:
        self.proc.kill()
        self.proc.wait(timeout=30)
        if self._feeder is not None:
            self._feeder.join(timeout=30)
        self._log.close()
        return self.sent


def durable_lines(storage: LocalStorage) -> int:
    """Lines in whole frames of whole syncs of the open segments."""
    prefixes = [intact_prefix(storage.read_bytes(path), compressed=True) for path in storage.unsealed_files()]
    return sum(prefix.lines for prefix in whole_cuts(prefixes))


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def kill_at_random_moments(
    root: Path, start: Callable[[], KilledRun], cli: Callable[..., str]
) -> list[tuple[list[bytes], int, list[bytes]]]:
    """KILLS runs started into `root`, each killed at a seeded random moment once it wrote a frame, then
    `fluxforge recover`: per run, the lines sent to it, the lines in whole frames when it was killed,
    and what the archive holds of it."""
    seed = int(os.environ.get("FLUXFORGE_KILL_SEED", random.randrange(1 << 32)))
    print(f"kill moments seeded with FLUXFORGE_KILL_SEED={seed}")
    rng = random.Random(seed)
    storage = LocalStorage(root)
    killed: list[tuple[list[bytes], int]] = []
    for kill in range(KILLS):
        left = set(storage.unsealed_files())  # by the run killed before: the restart seals them first
        run = start()
        wait_for(
            lambda: not left & set(storage.unsealed_files()) and durable_lines(storage) > 0,  # noqa: B023
            f"run {kill} to recover the previous one and write a first frame",
        )
        time.sleep(rng.uniform(0.0, 2.0))
        sent = run.kill9()
        durable = durable_lines(storage)
        fed = f"{len(sent)} lines fed, " if sent else ""
        print(f"kill {kill}: {fed}{durable} ticks in whole frames of its open segments")
        killed.append((sent, durable))
    report = cli("recover", root)
    assert f"Recovered {root}: 1 interrupted run(s)" in report, report
    by_session: dict[int, list[bytes]] = {}
    for line in archive_lines(storage):
        by_session.setdefault(ingest_key(line)[0], []).append(line)
    assert len(by_session) == KILLS
    return [
        (sent, durable, kept)
        for (sent, durable), (_, kept) in zip(killed, sorted(by_session.items()), strict=True)
    ]


def assert_tables_are_a_reprocess_of_the_archive(root: Path, tmp_path: Path, cli: Callable[..., str]) -> None:
    dates = archive_dates(LocalStorage(root))
    reference = tmp_path / "reference"
    cli(
        "reprocess",
        "--source-root",
        root,
        "-o",
        reference,
        "--start-date",
        dates[0],
        "--end-date",
        dates[-1],
        "-q",
    )
    assert_same_dataset(root, reference)
    assert "no problems found" in cli("validate", "--root", root)


def test_kill_9_at_random_moments_then_restart_keeps_every_durable_tick_once(
    tmp_path: Path, cli: Callable[..., str]
) -> None:
    root, log = tmp_path / "data", tmp_path / "runs.log"
    market = simulator_lines(FluxForgeSettings(simulator={"seed": 3}).simulator)
    sessions = kill_at_random_moments(
        root, lambda: KilledRun(["--input", "-", "-o", str(root)], log, market), cli
    )
    for sent, durable, kept in sessions:
        assert [ingest_key(line)[1] for line in kept] == list(range(1, len(kept) + 1))  # once, in order
        assert [unpaced(line) for line in kept] == [unpaced(line) for line in sent[: len(kept)]]
        assert len(kept) == durable  # every tick of a whole frame, nothing of the torn tail
    assert_tables_are_a_reprocess_of_the_archive(root, tmp_path, cli)


def test_kill_9_of_a_live_exchange_recording_then_restart_keeps_every_durable_tick_once(
    tmp_path: Path, cli: Callable[..., str], emulator: EmulatorThread
) -> None:
    root, log = tmp_path / "data", tmp_path / "runs.log"
    config = tmp_path / "config.yaml"
    config.write_bytes(
        orjson.dumps({"exchanges": {"binanceus": exchange_config(emulator).model_dump(mode="json")}})
    )
    args = ["--source", "exchange", "--exchange", "binanceus", "--config", str(config), "-o", str(root)]
    sessions = kill_at_random_moments(root, lambda: KilledRun(args, log), cli)
    booked: set[str] = set()
    for _sent, durable, kept in sessions:
        assert [ingest_key(line)[1] for line in kept] == list(range(1, len(kept) + 1))  # once, in order
        assert len(kept) == durable
        books: dict[str, list[int]] = {}
        for line in kept:
            tick = orjson.loads(line)
            if tick["type"] == "book":
                books.setdefault(tick["symbol"], []).append(tick["seq"])
        assert set(books) <= set(SYMBOLS)  # a run killed early may hold only the trades that came first
        booked |= set(books)
        assert all(seqs == sorted(set(seqs)) for seqs in books.values())  # each update once, in order
    assert booked == set(SYMBOLS)
    assert_tables_are_a_reprocess_of_the_archive(root, tmp_path, cli)


def test_validate_calls_a_killed_run_data_to_recover_and_repair_recovers_it(
    tmp_path: Path, cli: Callable[..., str]
) -> None:
    root, log = tmp_path / "data", tmp_path / "run.log"
    market = simulator_lines(FluxForgeSettings(simulator={"seed": 4}).simulator)
    storage = LocalStorage(root)
    run = KilledRun(["--input", "-", "-o", str(root)], log, market)
    wait_for(lambda: durable_lines(storage) > 0, "a first durable frame")
    run.kill9()
    durable, unsealed = durable_lines(storage), storage.unsealed_files()
    report = cli("validate", "--root", root, expect_exit=1)
    assert report.count(f"fluxforge recover {root}") == len(unsealed) + 1  # the segments and the journal
    assert "safe to delete" not in report
    repaired = cli("validate", "--root", root, "--repair")
    assert f"holding {durable:,} ticks" in repaired and repaired.rstrip().endswith("no problems found")
    assert len(list(archive_lines(storage))) == durable
    assert cli("recover", root).strip() == f"{root}: nothing to recover"
