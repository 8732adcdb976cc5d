"""Hive partition encoding: agrees with pyarrow both ways, and no value can escape the root."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from fluxforge_common.dataset.partitioning import (
    HIVE_NULL,
    MAX_COMPONENT_BYTES,
    MAX_VALUE_CHARS,
    ParquetPartition,
    check_date,
    deadletter_dir,
    decode_value,
    encode_segment,
    encode_value,
    parse_partition_dir,
    partition_dir,
    raw_partition_dir,
    utc_date,
)
from hypothesis import given, settings
from hypothesis import strategies as st

# Printable text: what check_value accepts (up to its length bound).
printable = st.text(
    st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")), min_size=1, max_size=40
).filter(lambda s: s.isprintable() and s != HIVE_NULL)

AWKWARD = [
    "BTC/USDT",
    "BTC/USDT:USDT",
    "1000SHIB/USDT",
    "a b",
    "x%y",
    "a+b",
    "a=b",
    "a#b?c&d",
    "é/€",
    "~._-",
    "..",
    "../../etc",
    "\\",
]
HIVE = ds.HivePartitioning(pa.schema([("exchange", pa.string()), ("symbol", pa.string())]))


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("BTC/USDT", "BTC%2FUSDT"),
        ("BTC/USDT:USDT", "BTC%2FUSDT%3AUSDT"),
        ("binanceus", "binanceus"),
        ("é", "%C3%A9"),
    ],
)
def test_encode_examples(value: str, encoded: str) -> None:
    assert encode_value(value) == encoded
    assert decode_value(encoded) == value


@pytest.mark.parametrize("value", AWKWARD)
def test_matches_pyarrow_format_and_parse(value: str) -> None:
    expr = (ds.field("exchange") == "x") & (ds.field("symbol") == value)
    pyarrow_dir, _ = HIVE.format(expr)
    ours = f"{encode_segment('exchange', 'x')}/{encode_segment('symbol', value)}"
    assert ours == pyarrow_dir
    assert ds.get_partition_keys(HIVE.parse(f"/{ours}/part.parquet")) == {"exchange": "x", "symbol": value}


@settings(max_examples=150, deadline=None)
@given(printable)
def test_any_printable_value_round_trips_through_pyarrow(value: str) -> None:
    """Or is refused when its encoding does not fit one path component (40 characters of 4 UTF-8
    bytes, each escaped as %XX, are 480 bytes)."""
    if len("symbol=" + encode_value(value)) > MAX_COMPONENT_BYTES:
        with pytest.raises(ValueError, match=f"over the {MAX_COMPONENT_BYTES}-byte limit"):
            encode_segment("symbol", value)
        return
    segment = encode_segment("symbol", value)
    assert "/" not in segment
    assert decode_value(segment.split("=", 1)[1]) == value
    assert ds.get_partition_keys(HIVE.parse(f"/exchange=x/{segment}/part.parquet"))["symbol"] == value


def test_directory_names_equal_pyarrow_writer_output(tmp_path: Path) -> None:
    table = pa.table({"symbol": AWKWARD, "v": list(range(len(AWKWARD)))})
    ds.write_dataset(table, tmp_path, format="parquet", partitioning=["symbol"], partitioning_flavor="hive")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(encode_segment("symbol", v) for v in AWKWARD)


@pytest.mark.parametrize(
    ("text", "why"),
    [("%ZZ", "malformed"), ("abc%", "malformed"), ("%4", "malformed"), ("%FF", "UTF-8"), ("%00", "control")],
)
def test_decode_is_strict(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        decode_value(text)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "empty"),
        ("x" * (MAX_VALUE_CHARS + 1), "longer"),
        ("BTC\x00USDT", "control"),
        ("BTC\nUSDT", "control"),
        ("a\x7fb", "control"),
        ("a\u200bb", "control"),  # zero-width space: invisible in a listing
        (HIVE_NULL, "null"),
    ],
)
def test_bad_values_are_refused(value: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        encode_value(value)
    with pytest.raises(ValueError, match=why):
        partition_dir("hf", "binanceus", value, "2025-12-12")


def test_long_multibyte_value_is_refused_by_component_size() -> None:
    value = "€" * MAX_VALUE_CHARS  # 128 characters, 9 encoded bytes each
    with pytest.raises(ValueError, match="255-byte"):
        encode_segment("symbol", value)


def test_partition_dir_layout() -> None:
    assert partition_dir("hf", "binanceus", "BTC/USDT", "2025-12-12") == (
        "hf/exchange=binanceus/symbol=BTC%2FUSDT/date=2025-12-12"
    )
    assert raw_partition_dir("binanceus", "book", "2025-12-12") == (
        "raw/exchange=binanceus/channel=book/date=2025-12-12"
    )
    assert deadletter_dir("2025-12-12") == "deadletter/date=2025-12-12"


@pytest.mark.parametrize("value", ["../../etc", "..", ".", "a/b", "/abs", "a/../../b", "~"])
def test_no_value_adds_a_component_or_escapes(tmp_path: Path, value: str) -> None:
    hf = partition_dir("hf", value, value, "2025-12-12")
    raw = raw_partition_dir(value, "trade", "2025-12-12")
    for rel in (hf, raw):
        parts = PurePosixPath(rel).parts
        assert len(parts) == 4
        assert all(part not in (".", "..") and "=" in part for part in parts[1:])
        assert (tmp_path / rel).resolve().is_relative_to(tmp_path.resolve())
    assert parse_partition_dir(hf) == ParquetPartition("hf", value, value, "2025-12-12")


@pytest.mark.parametrize("table", ["", "../hf", "HF", "h/f", "hf\x00", "1hf"])
def test_bad_table_names(table: str) -> None:
    with pytest.raises(ValueError, match="table name"):
        partition_dir(table, "x", "y", "2025-12-12")


@pytest.mark.parametrize("date", ["2025-13-01", "2025-02-30", "2025-1-1", "20251212", "../2025-12-12", ""])
def test_bad_dates(date: str) -> None:
    with pytest.raises(ValueError, match="date"):
        check_date(date)
    with pytest.raises(ValueError, match="date"):
        raw_partition_dir("x", "book", date)


def test_bad_channel() -> None:
    with pytest.raises(ValueError, match="channel"):
        raw_partition_dir("x", "orderbook", "2025-12-12")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ts_ms", "date"),
    [
        (0, "1970-01-01"),
        (1_765_497_599_999, "2025-12-11"),
        (1_765_497_600_000, "2025-12-12"),
        (-1, "1969-12-31"),
    ],
)
def test_utc_date(ts_ms: int, date: str) -> None:
    assert utc_date(ts_ms) == date


@pytest.mark.parametrize("ts", [True, 1.5e12, "1765497600000", None])
def test_utc_date_wants_integer_ms(ts: object) -> None:
    with pytest.raises(ValueError, match="integer milliseconds"):
        utc_date(ts)  # type: ignore[arg-type]


def test_parse_partition_dir() -> None:
    rel = partition_dir("bars", "kraken", "BTC/USDT:USDT", "2025-12-12")
    assert parse_partition_dir(rel) == ParquetPartition("bars", "kraken", "BTC/USDT:USDT", "2025-12-12")
    assert ParquetPartition("bars", "kraken", "BTC/USDT:USDT", "2025-12-12").path == rel
    with pytest.raises(ValueError, match="expected a exchange=<value>"):
        parse_partition_dir("hf/symbol=BTC%2FUSDT/exchange=kraken/date=2025-12-12")
    with pytest.raises(ValueError, match="expected <table>"):
        parse_partition_dir("hf/exchange=kraken/date=2025-12-12")
