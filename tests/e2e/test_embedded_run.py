"""`fluxforge run` / `reprocess` as a user runs them: determinism and same rows three ways."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import orjson
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from fluxforge_common.dataset.provenance import read_provenance
from fluxforge_common.dataset.validation import validate_dataset
from fluxforge_common.pipeline import archive_lines
from fluxforge_common.storage.local import LocalStorage

from tests.support.dataset import assert_same_dataset, read_dataset

DURATION = "240"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One simulator run, shared: the reference dataset the other modes must reproduce."""
    from typer.testing import CliRunner

    from fluxforge.cli.app import app

    root = tmp_path_factory.mktemp("recorded")
    result = CliRunner().invoke(app, ["run", "-o", str(root), "--duration", DURATION, "--seed", "11"])
    assert result.exit_code == 0, result.output
    return root


def test_run_reports_what_it_wrote_and_the_dataset_validates(recorded: Path, cli: Callable[..., str]) -> None:
    assert validate_dataset(recorded) == []
    assert (recorded / "hf" / "exchange=binanceus" / "symbol=BTC%2FUSDT").is_dir()
    out = cli(
        "query",
        "hf",
        "--root",
        recorded,
        "--symbol",
        "BTC/USDT",
        "--columns",
        "ts,symbol,mid",
        "--limit",
        "3",
    )
    assert "BTC/USDT" in out and "more rows" in out


def test_same_seed_gives_identical_rows(recorded: Path, tmp_path: Path, cli: Callable[..., str]) -> None:
    cli("run", "-o", tmp_path, "--duration", DURATION, "--seed", "11", "-q")
    assert_same_dataset(tmp_path, recorded)


def test_different_seed_gives_different_rows(recorded: Path, tmp_path: Path, cli: Callable[..., str]) -> None:
    cli("run", "-o", tmp_path, "--duration", DURATION, "--seed", "12", "-q")
    assert not read_dataset(tmp_path)["hf"].equals(read_dataset(recorded)["hf"])


def test_run_input_on_the_archive_gives_the_same_rows(
    recorded: Path, tmp_path: Path, cli: Callable[..., str]
) -> None:
    cli("run", "--input", recorded / "raw", "-o", tmp_path, "-q")
    assert_same_dataset(tmp_path, recorded)


def test_run_input_from_a_file_and_from_stdin(
    recorded: Path, tmp_path: Path, cli: Callable[..., str]
) -> None:
    lines = list(archive_lines(LocalStorage(recorded)))
    file = tmp_path / "raw.ndjson"
    file.write_bytes(b"\n".join(lines) + b"\n")
    cli("run", "--input", file, "-o", tmp_path / "from_file", "-q")
    assert_same_dataset(tmp_path / "from_file", recorded)
    cli("run", "--input", "-", "-o", tmp_path / "from_stdin", "-q", stdin=file.read_text())
    assert_same_dataset(tmp_path / "from_stdin", recorded)


def test_reprocess_gives_the_same_rows_and_rerunning_replaces(
    recorded: Path, tmp_path: Path, cli: Callable[..., str]
) -> None:
    out = cli("reprocess", "--date", "2025-12-12", "--source-root", recorded, "-o", tmp_path, "-q")
    assert "replaced 0" in out
    assert_same_dataset(tmp_path, recorded)
    files_before = sorted(p.name for p in tmp_path.rglob("*.parquet"))
    out = cli(
        "reprocess",
        "--start-date",
        "2025-12-12",
        "--end-date",
        "2025-12-12",
        "--source-root",
        recorded,
        "-o",
        tmp_path,
        "-q",
    )
    assert f"replaced {len(files_before)}" in out
    assert_same_dataset(tmp_path, recorded)
    assert len(list(tmp_path.rglob("*.parquet"))) == len(files_before)


def test_reprocess_of_one_day_keeps_a_quiet_symbols_last_rows_of_it(
    tmp_path: Path, cli: Callable[..., str]
) -> None:
    """ETH/USDT is quiet from 23:59:30 to 00:00:30: its rows up to midnight come from its first tick
    of the next day, so a reprocess of the first day alone must read on into the next, and there
    until the 7-minute bar open at midnight closes (420 s does not divide a day) and no further."""
    midnight = 1_765_584_000_000  # 2025-12-13T00:00:00Z
    lines = []
    for symbol, base in (("BTC/USDT", 90_000.0), ("ETH/USDT", 3_000.0)):
        for i, t in enumerate(range(midnight - 60_000, midnight + 900_000, 100)):
            if symbol == "ETH/USDT" and midnight - 30_000 <= t < midnight + 30_000:
                continue
            price = base + (i % 7) * 0.5
            book = {"type": "book", "exchange": "binanceus", "symbol": symbol, "ts": t, "recv_ts": t + 5,
                    "bids": [[price, 1.0 + i % 3]], "asks": [[price + 0.5, 1.5]]}  # fmt: skip
            lines.append((t, orjson.dumps(book)))
            common = {"exchange": "binanceus", "symbol": symbol, "ts": t + 1, "recv_ts": t + 6}
            if i % 5 == 0:
                trade = {"type": "trade", "id": f"{i}", "price": price, "amount": 0.1, "side": "buy"}
                lines.append((t + 1, orjson.dumps(common | trade)))
            if i % 25 == 0:
                lines.append(
                    (t + 1, orjson.dumps(common | {"type": "ticker", "bid": price, "ask": price + 0.5}))
                )
    source = tmp_path / "midnight.ndjson"
    source.write_bytes(b"".join(line + b"\n" for _, line in sorted(lines)))
    config = tmp_path / "config.yaml"
    config.write_text("features:\n  bar_durations: [1, 5, 30, 60, 420]\n")
    recorded, rebuilt = tmp_path / "recorded", tmp_path / "rebuilt"
    cli("run", "--input", source, "-o", recorded, "-q", "--config", config)
    out = cli(
        "reprocess", "--date", "2025-12-12", "--source-root", recorded, "-o", rebuilt, "--config", config
    )
    read = re.search(r"Read ([\d,]+) raw ticks", out)
    assert read is not None and int(read.group(1).replace(",", "")) < len(lines) // 2, out  # stopped early
    cli(
        "reprocess",
        "--date",
        "2025-12-13",
        "--source-root",
        recorded,
        "-o",
        rebuilt,
        "-q",
        "--config",
        config,
    )
    assert_same_dataset(rebuilt, recorded)
    eth = read_dataset(rebuilt)["hf"].filter(pc.equal(pc.field("symbol"), "ETH/USDT"))
    assert pc.max(eth.column("ts")).as_py().timestamp() * 1000 >= midnight - 1_000
    bars = read_dataset(rebuilt)["bars"].filter(pc.equal(pc.field("duration_s"), 420))
    across = (midnight - 1) // 420_000 * 420  # the 7-minute bar open at midnight, dated the first day
    assert across in {int(ts.timestamp()) for ts in bars.column("ts").to_pylist()}


def test_reprocess_says_when_its_warm_up_day_is_missing(
    recorded: Path, tmp_path: Path, cli: Callable[..., str]
) -> None:
    out = cli("reprocess", "--date", "2025-12-12", "--source-root", recorded, "-o", tmp_path / "a", "-q")
    assert "warning: warm-up day(s) 2025-12-11 not in the archive of" in " ".join(out.split())
    args = ("--date", "2025-12-12", "--source-root", recorded, "-o", tmp_path / "b", "-q", "--warmup-days", 0)
    assert "warning" not in cli("reprocess", *args)


def test_reprocess_split_over_processes_gives_the_same_rows_and_counts(
    recorded: Path, tmp_path: Path, cli: Callable[..., str]
) -> None:
    counts = []
    for workers in ("1", "3"):
        out = cli(
            "reprocess", "--date", "2025-12-12", "--source-root", recorded, "-o", tmp_path / workers,
            "--workers", workers, "-q",
        )  # fmt: skip
        assert_same_dataset(tmp_path / workers, recorded)
        read = re.search(r"Read ([\d,]+) raw ticks .*: ([\d,]+) applied, ([\d,]+) to dead-letter", out)
        assert read is not None, out
        counts.append(read.groups())
    assert counts[0] == counts[1]


def test_run_files_record_their_provenance(recorded: Path) -> None:
    files = sorted(recorded.glob("*/**/*.parquet"))
    assert files
    for path in files:
        origin = read_provenance(pq.read_schema(path).metadata)
        assert origin is not None and orjson.loads(origin.source) == {
            "mode": "embedded",
            "input": "simulator(seed=11)",
        }


def test_reprocess_of_a_date_without_archive_says_what_exists(
    recorded: Path, tmp_path: Path, cli: Callable[..., str]
) -> None:
    out = cli("reprocess", "--date", "2030-01-01", "--source-root", recorded, "-o", tmp_path, expect_exit=1)
    assert "2025-12-12" in out


def test_archive_keeps_every_accepted_tick_once(recorded: Path) -> None:
    lines = list(archive_lines(LocalStorage(recorded)))
    keys = [orjson.loads(line)["_ingest"] for line in lines]
    assert keys == sorted(keys) and len(set(map(tuple, keys))) == len(keys)
    assert any(path.suffix == ".zst" for path in (recorded / "raw").rglob("*"))


def test_run_input_refuses_its_own_root_and_a_directory_without_archive(
    recorded: Path, tmp_path: Path, cli: Callable[..., str]
) -> None:
    before = sorted(recorded.rglob("*"))
    for given in (recorded, recorded / "raw"):
        out = cli("run", "--input", given, "-o", recorded, "-q", expect_exit=2)
        assert "is the archive of the output root" in out and "fluxforge reprocess" in out
    assert sorted(recorded.rglob("*")) == before  # nothing written, nothing doubled
    partition = next((recorded / "raw").iterdir())
    out = cli("run", "--input", partition, "-o", tmp_path / "out", "-q", expect_exit=2)
    assert f"no raw archive under {partition}/raw; the dataset root holding it is {recorded}" in out
    (tmp_path / "empty").mkdir()
    assert "no raw archive under" in cli(
        "run", "--input", tmp_path / "empty", "-o", tmp_path / "o2", expect_exit=2
    )


def test_reprocess_from_a_missing_root_creates_nothing_and_names_a_long_range_briefly(
    recorded: Path, tmp_path: Path, cli: Callable[..., str]
) -> None:
    typo = tmp_path / "dat"
    out = cli(
        "reprocess", "--date", "2025-12-12", "--source-root", typo, "-o", tmp_path / "out", expect_exit=1
    )
    assert f"the source root {typo} does not exist" in out and not typo.exists()
    year = ["--start-date", "2030-01-01", "--end-date", "2030-12-31"]
    out = cli("reprocess", *year, "--source-root", recorded, "-o", tmp_path / "out", expect_exit=1)
    assert "2030-01-01 .. 2030-12-31 (365 dates)" in out and "2030-06-15" not in out


def test_reprocess_onto_an_unreadable_marker_stops_before_changing_anything(
    recorded: Path, tmp_path: Path, cli: Callable[..., str]
) -> None:
    root = tmp_path / "root"
    cli("reprocess", "--date", "2025-12-12", "--source-root", recorded, "-o", root, "-q")
    partition = next((root / "hf").glob("*/*/date=2025-12-12"))
    (partition / "_compaction.json").write_text("{not json")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    out = cli("reprocess", "--date", "2025-12-12", "--source-root", recorded, "-o", root, "-q", expect_exit=1)
    assert "compaction marker" in out and "unreadable" in out
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_run_refuses_source_options_its_source_does_not_use(tmp_path: Path, cli: Callable[..., str]) -> None:
    """As `collect` does: an option the chosen source ignores is refused, not silently dropped."""
    ticks = tmp_path / "ticks.ndjson"
    ticks.write_bytes(b"{}\n")
    refused = {
        ("--source", "simulator", "--input", ticks): "--input needs --source file",
        ("--input", ticks, "--seed", "999"): "--seed is the simulator's: it does nothing with --source file",
        (
            "--source",
            "simulator",
            "-x",
            "kraken",
        ): "--exchange needs --source exchange, not --source simulator",
        ("--source", "file", "--input", ticks, "-x", "kraken"): "--exchange needs --source exchange",
    }
    for args, reason in refused.items():
        out = cli("run", *args, "-o", tmp_path / "data", "-q", expect_exit=2)
        assert reason in out, (args, out)
    assert not (tmp_path / "data").exists()
