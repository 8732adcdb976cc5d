"""Sources, pacing and the option checks shared by `fluxforge-collector` and `fluxforge collect`."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path

import pytest
from fluxforge_collector import sources
from fluxforge_collector.collector import Pacer
from fluxforge_collector.launch import CollectOptions, build_source, selected_dates
from fluxforge_collector.sources import IteratorSource, archive_source, file_source
from fluxforge_common.config import FluxForgeSettings
from fluxforge_common.pipeline.lines import IDLE, simulator_lines
from fluxforge_common.simulator import SimulatorConfig


async def collect(source: IteratorSource, limit: int | None = None) -> list[bytes]:
    got: list[bytes] = []
    async with contextlib.aclosing(source.lines()) as lines:
        async for line in lines:
            got.append(line)
            if limit is not None and len(got) >= limit:
                break
    return got


@pytest.mark.parametrize("chunk", [1, 3, 1024])
def test_iterator_source_yields_every_line_in_order(chunk: int) -> None:
    lines = [b'{"n":%d}' % i for i in range(10)]
    assert asyncio.run(collect(IteratorSource(lines, "list", chunk=chunk))) == lines


def test_iterator_source_can_be_closed_early_on_an_endless_stream() -> None:
    source = IteratorSource(simulator_lines(SimulatorConfig(seed=1)), "sim", chunk=16)
    got = asyncio.run(collect(source, limit=40))
    assert got == list(itertools.islice(simulator_lines(SimulatorConfig(seed=1)), 40))


def test_iterator_source_does_not_block_the_loop_while_reading() -> None:
    def slow() -> Iterator[bytes]:
        time.sleep(0.3)
        yield b"{}"

    async def go() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        await collect(IteratorSource(slow(), "slow", chunk=1))
        task.cancel()
        return ticks

    assert asyncio.run(go()) >= 3  # a loop the read blocked would tick once or twice at most


def test_file_source_reads_an_ndjson_file(tmp_path: Path) -> None:
    path = tmp_path / "ticks.ndjson"
    path.write_bytes(b'{"a":1}\n\n{"b":2}\r\n')
    source = file_source(path)
    assert source.name == f"file:{path}"
    assert asyncio.run(collect(source)) == [b'{"a":1}', b'{"b":2}']


def test_file_source_explains_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        file_source(tmp_path / "missing.ndjson")
    (tmp_path / "t.ndjson").write_bytes(b"{}\n")
    with pytest.raises(ValueError, match="need a dataset root"):
        file_source(tmp_path / "t.ndjson", ["2025-12-12"])
    with pytest.raises(ValueError, match="not stdin"):
        file_source("-", ["2025-12-12"])
    with pytest.raises(ValueError, match="no raw archive"):
        archive_source(tmp_path)


def test_archive_source_names_the_dates_it_holds(tmp_path: Path) -> None:
    part = tmp_path / "raw/exchange=x/channel=book/date=2025-12-12"
    part.mkdir(parents=True)
    (part / "seg-1.ndjson").write_bytes(b'{"n":1,"_ingest":[1,1]}\n')
    with pytest.raises(ValueError, match="holds 2025-12-12"):
        archive_source(tmp_path, ["2025-12-13"])
    assert asyncio.run(collect(archive_source(tmp_path / "raw", ["2025-12-12", "2025-12-13"]))) == [
        b'{"n":1,"_ingest":[1,1]}'
    ]


def test_date_options() -> None:
    assert selected_dates(None, None, None) is None
    assert selected_dates("2025-12-12", None, None) == ["2025-12-12"]
    assert selected_dates(None, "2025-12-30", "2026-01-01") == ["2025-12-30", "2025-12-31", "2026-01-01"]
    for bad in [("2025-12-12", "2025-12-12", None), (None, "2025-12-12", None), ("12/12/2025", None, None)]:
        with pytest.raises(ValueError):
            selected_dates(*bad)


def test_source_options() -> None:
    settings = FluxForgeSettings()
    assert build_source(settings, CollectOptions()).name == f"simulator(seed={settings.simulator.seed})"
    for bad in [
        CollectOptions(source="file"),
        CollectOptions(source="simulator", input="x.ndjson"),
        CollectOptions(input="missing.ndjson"),
        CollectOptions(date="2025-12-12"),
        CollectOptions(speed=0),
    ]:
        with pytest.raises(ValueError):
            build_source(settings, bad)
    assert CollectOptions(input="-").kind == "file"
    assert CollectOptions().pacing is None
    assert CollectOptions(realtime=True).pacing == 1.0
    assert CollectOptions(speed=5).pacing == 5


def test_pacer_releases_ticks_at_their_recv_ts_offset_scaled_by_speed() -> None:
    """Never early; late by at most 0.15 s, so that a loaded machine's scheduling passes and a pacer
    ignoring `speed` (0.8 s and 1.6 s) does not."""
    pacer = Pacer(speed=4)
    released: list[float] = []

    async def go() -> None:
        for recv_ts in (1_000, 1_800, 1_800, 2_600):
            await pacer.wait(recv_ts)
            released.append(time.monotonic())

    asyncio.run(go())
    offsets = [t - released[0] for t in released]
    for offset, expected in zip(offsets[1:], (0.2, 0.2, 0.4), strict=True):
        assert expected - 0.005 <= offset <= expected + 0.15, offsets
    with pytest.raises(ValueError):
        Pacer(speed=0)


def test_a_failing_iterator_raises_in_the_consumer() -> None:
    def broken() -> Iterator[bytes]:
        yield b"{}"
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        asyncio.run(collect(IteratorSource(broken(), "broken", chunk=1)))


class QuietMarket:
    """A live source that delivers one line, then nothing for `quiet_s`, then one more."""

    name = "quiet"

    def __init__(self, quiet_s: float) -> None:
        self.quiet_s = quiet_s

    def request_stop(self) -> bool:
        return False

    async def lines(self) -> AsyncGenerator[bytes, None]:
        yield b'{"first":1}'
        await asyncio.sleep(self.quiet_s)
        yield b'{"second":2}'


def test_blocking_lines_yield_idle_while_the_market_is_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "IDLE_AFTER_S", 0.1)
    got = list(sources.BlockingLines(QuietMarket(quiet_s=0.6)))
    assert got[0] == b'{"first":1}' and got[-1] == b'{"second":2}'
    assert set(got[1:-1]) == {IDLE} and len(got[1:-1]) >= 3, got
