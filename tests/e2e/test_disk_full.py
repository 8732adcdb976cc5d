"""`fluxforge run` into a real tiny filesystem (a tmpfs) that fills up: a clear message naming the
root and its free space, exit status 3, every file kept, and after space is freed `fluxforge
recover` (or the run itself, stopped by the reserve) leaves the dataset of a run of the same input."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from pathlib import Path

import orjson
import yaml
from fluxforge_common.config.settings import FluxForgeSettings
from fluxforge_common.dataset.interrupted import find_interrupted
from fluxforge_common.dataset.validation import validate_dataset
from fluxforge_common.pipeline import archive_dates, archive_lines, simulator_lines
from fluxforge_common.pipeline.embedded import CLOCK_LINES
from fluxforge_common.pipeline.ingest_order import ingest_key
from fluxforge_common.storage import LocalStorage
from fluxforge_common.storage.space import DISK_FULL_STATUS

from tests.support.dataset import assert_same_dataset, read_dataset
from tests.support.small_disk import SmallDisk

INPUT_LINES = 150_000


def market_file(path: Path) -> list[bytes]:
    """A simulated market as a raw NDJSON input file; returns its lines."""
    lines = list(
        itertools.islice(simulator_lines(FluxForgeSettings(simulator={"seed": 5}).simulator), INPUT_LINES)
    )
    path.write_bytes(b"\n".join(lines) + b"\n")
    return lines


def config_file(path: Path, **storage: object) -> Path:
    """Raw segments of 1 MiB or 1 s of event time (so some are sealed before the disk fills, on any
    machine: the 1.5 MiB the tests leave fill before any channel has 1 MiB of lines, and a segment
    left open is sealed at the end only if its last flush still fits), synced every 50 ms (so every
    channel has frames when it fills), and rows written at every look at the clock (`CLOCK_LINES`)."""
    settings = {
        "storage": storage,
        "raw_archive": {"segment_max_mb": 1, "segment_max_age_s": 1, "sync_interval_s": 0.05},
        "embedded": {"flush_interval_s": 0.001},
    }
    path.write_text(yaml.safe_dump(settings))
    return path


def channel_of(line: bytes) -> tuple[str, str]:
    tick = orjson.loads(line)
    return tick["exchange"], tick["type"]


def visible_files(root: Path) -> dict[str, bytes]:
    storage = LocalStorage(root)
    return {path: storage.read_bytes(path) for path in storage.list_files() if not path.startswith(".")}


def test_a_full_disk_stops_the_run_keeps_every_file_and_recover_completes_it(
    small_disk: SmallDisk, tmp_path: Path, cli: Callable[..., str]
) -> None:
    source = tmp_path / "market.ndjson"
    lines = market_file(source)
    root = small_disk.path / "data"
    filler = small_disk.fill(leave_bytes=1536 << 10)
    config = config_file(tmp_path / "config.yaml", min_free_mb=0)

    report = cli("run", "--input", source, "-o", root, "-c", config, "-q", expect_exit=DISK_FULL_STATUS)

    assert "Traceback" not in report
    free = re.search(
        rf"disk full at {re.escape(str(root))}: no space left on device \((\d+\.\d) MiB free\)", report
    )
    assert free is not None, report
    assert f"fluxforge recover {root}" in report
    # Running the same file into the root again would archive what it read twice: not advised.
    assert (
        "into it again" not in report
        and "to process the rest of the input, run it into another root" in report
    )
    kept = visible_files(root)
    assert any(path.startswith("raw/") for path in kept)
    interrupted = find_interrupted(root)
    assert interrupted.journals, "the journal that tells recover which dates to rebuild is kept"

    filler.unlink()
    cli("recover", root, "-q")

    after = visible_files(root)
    for path, data in kept.items():  # nothing written before the disk filled is gone or changed
        if path.startswith(("raw/", "deadletter/")):
            assert after[path] == data, path
    assert not find_interrupted(root)
    archived = sorted(ingest_key(line)[1] for line in archive_lines(LocalStorage(root)))
    assert len(archived) == len(set(archived))  # once
    by_channel: dict[tuple[str, str], list[int]] = {}
    for n, line in enumerate(lines, 1):
        by_channel.setdefault(channel_of(line), []).append(n)
    archived_set = set(archived)
    for channel, numbers in by_channel.items():  # what is lost is a channel's tail, never its middle
        held = [n for n in numbers if n in archived_set]
        assert held == numbers[: len(held)], channel
    assert 0 < len(archived) < len(lines)

    same_span = tmp_path / "same_span.ndjson"
    same_span.write_bytes(b"".join(lines[n - 1] + b"\n" for n in archived))
    reference = tmp_path / "reference"
    cli("run", "--input", same_span, "-o", reference, "-c", config, "-q")
    assert_same_dataset(root, reference)
    assert validate_dataset(root) == []


def test_the_reserve_stops_the_run_before_the_disk_is_full_with_everything_written(
    small_disk: SmallDisk, tmp_path: Path, cli: Callable[..., str]
) -> None:
    source = tmp_path / "market.ndjson"
    market_file(source)
    root = small_disk.path / "data"
    small_disk.fill(leave_bytes=2560 << 10)
    config = config_file(tmp_path / "config.yaml", min_free_mb=1)

    report = cli("run", "--input", source, "-o", root, "-c", config, "-q", expect_exit=DISK_FULL_STATUS)

    assert "Traceback" not in report
    assert re.search(
        rf"disk full at {re.escape(str(root))}: \d+\.\d MiB free, below the reserve of 1 MiB \(storage.min_free_mb\)",
        report,
    ), report
    assert "Everything read so far is written" in report
    read = re.search(r"Read ([\d,]+) raw ticks", report)
    assert read is not None, report
    events = int(read.group(1).replace(",", ""))
    assert "run again" not in report
    assert (
        f"Its {events:,} ticks read are in {root}: to process the rest of the input, run it into another root"
        in (" ".join(report.split()))
    )
    assert events % CLOCK_LINES == 0 and events < INPUT_LINES  # stopped at a check of the reserve
    assert small_disk.free() > 0
    assert not find_interrupted(root)  # sealed and finished: nothing to recover
    assert validate_dataset(root) == []

    reference = tmp_path / "reference"
    cli("run", "--input", source, "--events", events, "-o", reference, "-c", config, "-q")
    assert_same_dataset(root, reference)
    assert sorted(archive_lines(LocalStorage(root))) != []
    assert read_dataset(root)["hf"].num_rows > 0


def test_below_the_reserve_at_the_start_the_run_writes_nothing_and_says_so(
    small_disk: SmallDisk, tmp_path: Path, cli: Callable[..., str]
) -> None:
    root = small_disk.path / "data"
    small_disk.fill(leave_bytes=512 << 10)
    config = config_file(tmp_path / "config.yaml", min_free_mb=1)
    report = cli("run", "-o", root, "-c", config, "--duration", "10", "-q", expect_exit=DISK_FULL_STATUS)
    assert f"disk full at {root}" in report and "below the reserve of 1 MiB" in report, report
    assert visible_files(root) == {}


def test_a_full_disk_stops_reprocess_and_recover_with_every_earlier_file_kept(
    small_disk: SmallDisk, tmp_path: Path, cli: Callable[..., str]
) -> None:
    """A rebuild the disk cut short wrote part of the rows: deleting the earlier files then lost the
    rest. Both commands keep them, say so, and once space is back a rerun gives the recording."""
    source = tmp_path / "market.ndjson"
    source.write_bytes(b"".join(line + b"\n" for line in market_file(source)[:40_000]))
    root = small_disk.path / "data"
    small_disk.resize(64 << 10)  # KiB: room for the recording
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"storage": {"min_free_mb": 0}}))
    cli("run", "--input", source, "-o", root, "-c", config, "-q")
    recorded = read_dataset(root)
    (date,) = archive_dates(LocalStorage(root))
    filler = small_disk.fill(leave_bytes=16 << 10)

    report = cli(
        "reprocess", "--date", date, "--source-root", root, "-c", config, "-q", expect_exit=DISK_FULL_STATUS
    )
    assert f"disk full at {root}" in report and "The earlier files of" in report, report
    kept = read_dataset(root)
    for table, rows in recorded.items():  # every earlier row is still there (beside part of the new ones)
        assert kept[table].num_rows >= rows.num_rows, table

    # It left its journal: `recover` rebuilds the date, on the still-full disk as carefully.
    report = cli("recover", root, "-c", config, "-q", expect_exit=DISK_FULL_STATUS)
    assert "Every file written so far is kept" in report, report
    assert all(read_dataset(root)[table].num_rows >= rows.num_rows for table, rows in recorded.items())

    filler.unlink()
    cli("recover", root, "-c", config, "-q")
    rebuilt = read_dataset(root)
    assert all(rebuilt[table].equals(rows) for table, rows in recorded.items())
