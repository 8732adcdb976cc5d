"""validate_dataset finds every kind of damage; rewrite_legacy_layout repairs the legacy layout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fluxforge_common.dataset.compaction import compact_dataset
from fluxforge_common.dataset.interrupted import RUNS_DIR, RunJournal
from fluxforge_common.dataset.reader import DatasetWarning, read_table
from fluxforge_common.dataset.validation import Problem, rewrite_legacy_layout, validate_dataset
from fluxforge_common.storage import LocalStorage
from fluxforge_common.storage.base import temp_name
from fluxforge_common.writers import DeadLetterWriter, RawArchiveWriter

from tests.support.times import T0

Rows = list[dict[str, Any]]
ETH = "hf/exchange=kraken/symbol=ETH%2FUSDT/date=2025-12-12"
MIDNIGHT = 1_765_584_000_000  # 2025-12-13T00:00:00Z


def found(problems: list[Problem]) -> list[tuple[str, str, str]]:
    return [(p.path, p.severity, p.message) for p in problems]


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, found(problems)
    return problems[0]


def put(data_root: Path, rel: str, rows: Rows, schema: pa.Schema) -> None:
    (data_root / rel).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), data_root / rel)


@pytest.fixture
def full(storage: LocalStorage, written: Rows) -> Rows:
    """`written` plus a raw archive and a dead-letter file: every top-level table the pipeline makes."""
    archive = RawArchiveWriter(storage)
    for channel in ("book", "trade", "ticker"):
        archive.append("binanceus", channel, T0, b"{}")
    archive.close()
    dead = DeadLetterWriter(storage)
    dead.write("bad", b"\xff", "test", T0)
    dead.close()
    return written


def test_clean_dataset_has_no_problems(data_root: Path, full: Rows) -> None:
    assert validate_dataset(data_root) == []


def test_missing_root(tmp_path: Path) -> None:
    assert only(validate_dataset(tmp_path / "nope")).severity == "error"


def test_unknown_tables_and_stray_files(data_root: Path, full: Rows) -> None:
    (data_root / "features").mkdir()
    (data_root / "notes.txt").write_text("x")
    (data_root / ".DS_Store").write_text("x")  # hidden: not ours to judge
    assert found(validate_dataset(data_root)) == [
        (
            "features",
            "warning",
            "unknown top-level table (known: bars, deadletter, hf, ibars, raw, ticker, trades)",
        ),
        ("notes.txt", "warning", "stray file at the dataset root"),
    ]


@pytest.mark.parametrize(
    ("rel", "why"),
    [
        ("hf/symbol=BTC%2FUSDT/exchange=kraken/date=2025-12-12", "expected a exchange=<value> directory"),
        ("hf/exchange=kraken/sym=BTC%2FUSDT/date=2025-12-12", "expected a symbol=<value>"),
        ("hf/exchange=kraken/symbol=BTC%ZZ/date=2025-12-12", "malformed percent escape"),
        ("hf/exchange=kraken/symbol=%FF/date=2025-12-12", "does not decode to UTF-8"),
        ("hf/exchange=kraken/symbol=/date=2025-12-12", "symbol is empty"),
        ("hf/exchange=kraken/symbol=A%2FB/date=2025-02-30", "not a calendar date"),
        ("hf/exchange=kraken/symbol=A%2FB/date=20251212", "YYYY-MM-DD"),
        ("raw/exchange=kraken/channel=orderbook/date=2025-12-12", "channel must be one of"),
        ("deadletter/day=2025-12-12", "expected a date=<value>"),
    ],
)
def test_malformed_partition_directories(data_root: Path, rel: str, why: str) -> None:
    (data_root / rel).mkdir(parents=True)
    problem = only(validate_dataset(data_root))
    assert problem.severity == "error"
    assert problem.message.startswith("malformed partition directory")
    assert why in problem.message
    assert rel.startswith(problem.path)


def test_misplaced_files_and_dirs(data_root: Path, full: Rows) -> None:
    (data_root / "hf/exchange=kraken/loose.parquet").write_bytes(b"x")
    (data_root / ETH / "nested").mkdir()
    (data_root / ETH / "notes.csv").write_text("x")
    assert found(validate_dataset(data_root)) == [
        (
            "hf/exchange=kraken/loose.parquet",
            "warning",
            "file outside a partition directory (expected symbol=...)",
        ),
        (f"{ETH}/nested", "warning", "unexpected directory in a partition"),
        (f"{ETH}/notes.csv", "warning", "not a .parquet file; readers skip or choke on it"),
    ]


def test_legacy_layout_is_a_partition_format_mismatch(
    data_root: Path, write_legacy_file: Callable[..., str]
) -> None:
    rel = write_legacy_file("BTC/USDT")
    problem = only(validate_dataset(data_root))
    assert (problem.path, problem.severity) == (rel, "error")
    assert problem.message.startswith(
        "partition format mismatch (legacy layout): path says symbol='BTC-USDT'"
    )
    assert "'BTC/USDT'" in problem.message


def test_columns_disagreeing_with_the_path(
    data_root: Path, hf_schema: pa.Schema, make_rows: Callable[..., Rows]
) -> None:
    put(data_root, f"{ETH}/exchange.parquet", make_rows("binanceus", "ETH/USDT"), hf_schema)
    put(
        data_root,
        f"{ETH}/symbol.parquet",
        make_rows("kraken", "ETH/USDT", T0 + 10_000) + make_rows("kraken", "BTC/USDT", T0 + 20_000),
        hf_schema,
    )
    put(data_root, f"{ETH}/date.parquet", make_rows("kraken", "ETH/USDT", MIDNIGHT - 1000), hf_schema)
    rows = make_rows("kraken", "ETH/USDT", T0 + 30_000)
    rows[1]["ts"] = None
    put(data_root, f"{ETH}/null_ts.parquet", rows, hf_schema)
    put(data_root, f"{ETH}/empty.parquet", [], hf_schema)
    assert found(validate_dataset(data_root)) == [
        (
            f"{ETH}/date.parquet",
            "error",
            "ts spans UTC dates 2025-12-12..2025-12-13, path says date=2025-12-12",
        ),
        (f"{ETH}/empty.parquet", "warning", "file has no rows"),
        (f"{ETH}/exchange.parquet", "error", "exchange column holds ['binanceus'], path says 'kraken'"),
        (f"{ETH}/null_ts.parquet", "error", "1 row(s) have a null ts"),
        (
            f"{ETH}/symbol.parquet",
            "error",
            "symbol column holds ['BTC/USDT', 'ETH/USDT'], path says 'ETH/USDT'",
        ),
    ]


def test_missing_key_columns_and_other_ts_types(data_root: Path) -> None:
    put(
        data_root,
        f"{ETH}/no_ts.parquet",
        [{"exchange": "kraken", "symbol": "ETH/USDT"}],
        pa.schema([("exchange", pa.string()), ("symbol", pa.string())]),
    )
    int_ts = pa.schema([("exchange", pa.string()), ("symbol", pa.string()), ("ts", pa.int64())])
    put(data_root, f"{ETH}/int_ts.parquet", [{"exchange": "kraken", "symbol": "ETH/USDT", "ts": T0}], int_ts)
    problems = found(validate_dataset(data_root))
    assert (f"{ETH}/no_ts.parquet", "error", "lacks the column(s) ['ts'] every row must carry") in problems
    assert (f"{ETH}/int_ts.parquet", "warning", "ts is int64, expected timestamp[ms, tz=UTC]") in problems


def test_schema_drift(
    data_root: Path, full: Rows, hf_schema: pa.Schema, make_rows: Callable[..., Rows]
) -> None:
    wider = hf_schema.append(pa.field("vwap", pa.float64()))
    put(data_root, f"{ETH}/wider.parquet", make_rows("kraken", "ETH/USDT", T0 + 10_000), wider)
    retyped = hf_schema.set(hf_schema.get_field_index("n"), pa.field("n", pa.float64()))
    put(data_root, f"{ETH}/retyped.parquet", make_rows("kraken", "ETH/USDT", T0 + 20_000), retyped)
    assert found(validate_dataset(data_root)) == [
        (
            f"{ETH}/retyped.parquet",
            "error",
            "schema drift from the table's most common schema: type changes ['n: int64 -> double']",
        ),
        (
            f"{ETH}/wider.parquet",
            "warning",
            "schema drift from the table's most common schema: extra columns ['vwap']",
        ),
    ]


def test_leftover_temporaries_say_whether_their_content_is_elsewhere(data_root: Path, full: Rows) -> None:
    raw_dir = "raw/exchange=binanceus/channel=book/date=2025-12-12"
    parquet = f"{ETH}/{temp_name('part-1.parquet')}"
    sink_raw = f"{raw_dir}/{temp_name('fluxforge.raw+0+000001-000009.ndjson.zst')}"
    dead = f"deadletter/date=2025-12-12/{temp_name('dl-1.ndjson')}"
    for rel in (parquet, sink_raw, dead):
        (data_root / rel).parent.mkdir(parents=True, exist_ok=True)
        (data_root / rel).write_bytes(b"half a file")
    problems = validate_dataset(data_root)
    assert [(p.path, p.severity) for p in problems] == [
        (dead, "warning"),
        (parquet, "warning"),
        (sink_raw, "warning"),
    ]
    dead_msg, parquet_msg, sink_msg = (p.message for p in problems)
    assert "only copy of rejected input" in dead_msg and "safe to delete" not in dead_msg
    assert parquet_msg.endswith("rebuilt from raw/ (`fluxforge reprocess`): safe to delete")
    assert "the sink rewrites it from Kafka" in sink_msg and sink_msg.endswith("safe to delete")


def test_what_an_interrupted_run_left_is_data_to_recover_never_safe_to_delete(
    data_root: Path, full: Rows, storage: LocalStorage
) -> None:
    archive = RawArchiveWriter(storage)
    archive.append("binanceus", "trade", T0, b"{}")
    archive.sync()
    (unsealed,) = storage.unsealed_files()
    legacy = f"raw/exchange=binanceus/channel=book/date=2025-12-12/{temp_name('seg-1765512000000-000003-0123abcd.ndjson.zst')}"
    (data_root / legacy).write_bytes(b"frames")
    dead_run = RunJournal.begin(data_root)
    dead_run.note("2025-12-12")
    dead_run._file.close()  # the process died: its lock is gone, its journal stays
    live_run = RunJournal.begin(data_root)
    recover = f"run `fluxforge recover {data_root}`"
    problems = found(validate_dataset(data_root))
    assert problems == sorted(
        [
            (
                f"{RUNS_DIR}/{dead_run.path.name}",
                "error",
                f"journal of an interrupted run: the features of 2025-12-12 may lack rows; {recover}",
            ),
            (
                f"{RUNS_DIR}/{live_run.path.name}",
                "warning",
                "a run is writing into this dataset: its open raw segments are unsealed until it ends",
            ),
            *[
                (
                    path,
                    "error",
                    f"unsealed raw segment of an interrupted run: received ticks to recover, not a temporary; {recover}",
                )
                for path in (unsealed, legacy)
            ],
        ]
    )
    live_run.finish()


def test_corrupt_and_truncated_parquet(data_root: Path, full: Rows, storage: LocalStorage) -> None:
    (data_root / ETH / "garbage.parquet").write_bytes(b"not parquet at all")
    good = storage.list_files(ETH)[0]
    data = storage.read_bytes(good)
    (data_root / ETH / "truncated.parquet").write_bytes(data[: len(data) // 2])
    problems = validate_dataset(data_root)
    assert [(p.path, p.severity) for p in problems] == [
        (f"{ETH}/garbage.parquet", "error"),
        (f"{ETH}/truncated.parquet", "error"),
    ]
    assert all(p.message.startswith("unreadable or corrupt Parquet") for p in problems)


def test_underscore_files_are_flagged(data_root: Path, full: Rows, storage: LocalStorage) -> None:
    good = storage.list_files(ETH)[0]
    storage.write_bytes(f"{ETH}/_part.parquet", storage.read_bytes(good))
    (problem,) = validate_dataset(data_root)
    assert "DuckDB reads them" in problem.message


def test_rewrite_legacy_layout(data_root: Path, full: Rows, write_legacy_file: Callable[..., str]) -> None:
    legacy_btc = write_legacy_file("BTC/USDT", start_ms=T0 + 10_000)  # after the rows already there
    legacy_perp = write_legacy_file(
        "BTC/USDT:USDT", exchange="kraken", start_ms=T0 + 10_000, name="part_0002.parquet"
    )
    before = {p.path for p in validate_dataset(data_root)}
    assert before == {legacy_btc, legacy_perp}
    new_btc = "hf/exchange=binanceus/symbol=BTC%2FUSDT/date=2025-12-12/part_0001.parquet"
    new_perp = "hf/exchange=kraken/symbol=BTC%2FUSDT%3AUSDT/date=2025-12-12/part_0002.parquet"
    assert rewrite_legacy_layout(data_root) == [(legacy_btc, new_btc), (legacy_perp, new_perp)]
    assert (data_root / legacy_btc).exists()  # dry run by default
    assert rewrite_legacy_layout(data_root, dry_run=False) == [(legacy_btc, new_btc), (legacy_perp, new_perp)]
    assert validate_dataset(data_root) == []
    assert not (data_root / "hf/exchange=binanceus/symbol=BTC-USDT").exists()
    assert rewrite_legacy_layout(data_root, dry_run=False) == []
    symbols = duckdb.execute(
        f"select distinct symbol from read_parquet('{data_root}/hf/**/*.parquet', hive_partitioning=true)"
    ).fetchall()
    assert sorted(s for (s,) in symbols) == ["BTC/USDT", "BTC/USDT:USDT", "ETH/USDT"]
    assert (
        read_table(data_root, "hf", symbol="BTC/USDT").num_rows
        == len([r for r in full if r["symbol"] == "BTC/USDT"]) + 3
    )


def test_rewrite_leaves_ambiguous_files_in_place(
    data_root: Path,
    hf_schema: pa.Schema,
    make_rows: Callable[..., Rows],
    write_legacy_file: Callable[..., str],
) -> None:
    mixed = "hf/exchange=x/symbol=BTC-USDT/date=2025-12-12/mixed.parquet"
    put(data_root, mixed, make_rows("x", "BTC/USDT") + make_rows("x", "BTC/USDT:USDT"), hf_schema)
    legacy = write_legacy_file("BTC/USDT", exchange="x")
    target = "hf/exchange=x/symbol=BTC%2FUSDT/date=2025-12-12/part_0001.parquet"
    put(data_root, target, make_rows("x", "BTC/USDT"), hf_schema)
    with pytest.warns(DatasetWarning) as caught:
        assert rewrite_legacy_layout(data_root, dry_run=False) == []
    messages = sorted(str(w.message) for w in caught)
    assert messages[0].startswith(f"{mixed}: symbol column holds ['BTC/USDT', 'BTC/USDT:USDT']")
    assert messages[1] == f"{legacy}: {target} already exists; left in place"
    assert (data_root / mixed).exists()
    assert (data_root / legacy).exists()


def test_a_compacted_legacy_partition_is_left_in_place_and_keeps_its_rows(
    data_root: Path, full: Rows, write_legacy_file: Callable[..., str]
) -> None:
    """Its marker and its files cannot move at once: moving the files left them invisible, and the
    marker behind listed missing files, failing every read of the table."""
    write_legacy_file("BTC/USDT")
    write_legacy_file("BTC/USDT", start_ms=T0 + 60_000, name="part_0002.parquet")
    legacy = "hf/exchange=binanceus/symbol=BTC-USDT/date=2025-12-12"
    compact_dataset(LocalStorage(data_root), ["hf"], before="2100-01-01", target_bytes=1 << 27, grace_s=0)
    assert (data_root / legacy / "_compaction.json").exists()
    rows = read_table(data_root, "hf", symbol="BTC/USDT").num_rows
    assert rows == len([r for r in full if r["symbol"] == "BTC/USDT"]) + 6
    with pytest.warns(DatasetWarning, match="compacted .*left in place; readers read it as it is"):
        assert rewrite_legacy_layout(data_root, dry_run=False) == []
    assert read_table(data_root, "hf", symbol="BTC/USDT").num_rows == rows
    assert read_table(data_root, "hf").num_rows == len(full) + 6


def test_hf_rows_written_twice_are_an_error(data_root: Path, full: Rows, storage: LocalStorage) -> None:
    """Two files holding the same grid points (a sink group started over on its root): every reader
    returns each row twice, so validate must not call the dataset clean."""
    good = storage.list_files(ETH)[0]
    rows = pq.read_table(data_root / good).num_rows
    storage.write_bytes(f"{ETH}/again.parquet", storage.read_bytes(good))
    problem = only(validate_dataset(data_root))
    assert (problem.path, problem.severity) == (ETH, "error")
    assert problem.message.startswith(f"{rows} hf row(s) repeat a ts of the partition")
    assert "fluxforge reprocess" in problem.message
    # The same rows again in a file that stores ts in microseconds: compared in milliseconds.
    table = pq.read_table(data_root / good)
    micro = table.set_column(
        table.schema.get_field_index("ts"), "ts", table.column("ts").cast(pa.timestamp("us", tz="UTC"))
    )
    pq.write_table(micro, data_root / ETH / "micro.parquet")
    doubled = [p for p in validate_dataset(data_root) if p.path == ETH]
    assert [p.message.split(" hf row")[0] for p in doubled] == [str(2 * rows)]
