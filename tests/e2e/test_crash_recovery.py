"""`kill -9` of `fluxforge run` at random moments, then a restart into the same root: every tick
that reached a durable raw frame is archived once and in order, and the feature tables equal a
`fluxforge reprocess` of that archive."""

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
from fluxforge_common.pipeline import archive_lines, simulator_lines
from fluxforge_common.pipeline.ingest_order import ingest_key
from fluxforge_common.storage import LocalStorage
from fluxforge_common.writers.frames import intact_prefix

from tests.support.dataset import assert_same_dataset

KILLS = 5
LINES_PER_S = 4000  # the pace of the input, so that a kill lands while ticks are arriving
CHUNK = 40
SYNC_INTERVAL_S = "0.2"
DATE = "2025-12-12"


def unpaced(line: bytes) -> bytes:
    """A line as the archive holds it, without the ingest stamp the run adds."""
    obj = orjson.loads(line)
    obj.pop("_ingest", None)
    return orjson.dumps(obj)


class PacedRun:
    """`fluxforge run --input -` fed `lines` at LINES_PER_S from a thread, until killed."""

    def __init__(self, root: Path, lines: Iterator[bytes], log: Path) -> None:
        env = {**os.environ, "FLUXFORGE_RAW_ARCHIVE__SYNC_INTERVAL_S": SYNC_INTERVAL_S}
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fluxforge.cli", "run", "--input", "-", "-o", str(root), "-q"],
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=self._log,
            env=env,
        )
        self.sent: list[bytes] = []
        self._lines = lines
        self._feeder = threading.Thread(target=self._feed, daemon=True)
        self._feeder.start()

    def _feed(self) -> None:
        assert self.proc.stdin is not None
        try:
            for chunk in iter(lambda: list(itertools.islice(self._lines, CHUNK)), []):
                self.proc.stdin.write(b"".join(line + b"\n" for line in chunk))
                self.proc.stdin.flush()
                self.sent.extend(chunk)  # written to the pipe: the run may have read it
                time.sleep(CHUNK / LINES_PER_S)
        except (BrokenPipeError, ValueError):
            return  # killed

    def kill9(self) -> list[bytes]:
        self.proc.kill()
        self.proc.wait(timeout=30)
        self._feeder.join(timeout=30)
        self._log.close()
        return self.sent


def durable_lines(storage: LocalStorage) -> int:
    """Lines in whole frames of the open segments, read as any reader of the files would."""
    return sum(
        intact_prefix(storage.read_bytes(path), compressed=True).lines for path in storage.unsealed_files()
    )


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_kill_9_at_random_moments_then_restart_keeps_every_durable_tick_once(
    tmp_path: Path, cli: Callable[..., str]
) -> None:
    seed = int(os.environ.get("FLUXFORGE_KILL_SEED", random.randrange(1 << 32)))
    print(f"kill moments seeded with FLUXFORGE_KILL_SEED={seed}")
    rng = random.Random(seed)
    root, log = tmp_path / "data", tmp_path / "runs.log"
    storage = LocalStorage(root)
    market = simulator_lines(FluxForgeSettings(simulator={"seed": 3}).simulator)
    sessions: list[tuple[list[bytes], int]] = []  # (lines sent to the run, lines durable when killed)
    for kill in range(KILLS):
        left = set(storage.unsealed_files())  # by the run killed before: the restart seals them first
        run = PacedRun(root, market, log)
        wait_for(
            lambda: not left & set(storage.unsealed_files()) and durable_lines(storage) > 0,  # noqa: B023
            f"run {kill} to recover the previous one and write a first frame",
        )
        time.sleep(rng.uniform(0.0, 2.0))
        sent = run.kill9()
        durable = durable_lines(storage)
        print(f"kill {kill}: {len(sent)} lines sent, {durable} in whole frames of its open segments")
        sessions.append((sent, durable))
    report = cli("recover", root)
    assert "Recovered" in report and "interrupted run(s)" in report, report

    archived = list(archive_lines(storage))
    by_session: dict[int, list[bytes]] = {}
    for line in archived:
        by_session.setdefault(ingest_key(line)[0], []).append(line)
    assert len(by_session) == KILLS
    for (sent, durable), (_session, kept) in zip(sessions, sorted(by_session.items()), strict=True):
        positions = [ingest_key(line)[1] for line in kept]
        assert positions == list(range(1, len(kept) + 1))  # once each, in the order read, no gap
        assert [unpaced(line) for line in kept] == [unpaced(line) for line in sent[: len(kept)]]
        assert len(kept) == durable  # every tick of a whole frame, nothing of the torn tail
    reference = tmp_path / "reference"
    cli("reprocess", "--source-root", root, "-o", reference, "--date", DATE, "-q")
    assert_same_dataset(root, reference)
    assert "no problems found" in cli("validate", "--root", root)
