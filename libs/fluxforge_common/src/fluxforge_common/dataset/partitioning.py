"""Hive partition paths, encoded exactly as pyarrow, DuckDB and Polars decode them.

The rule (percent-encoding outside RFC 3986's unreserved set) and why no value
can escape the root are in docs/design.md "Dataset layout". Values are still
checked for emptiness, length and non-printable characters, so a bad exchange
name fails loudly here instead of producing a file nobody can list or read.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache
from typing import Final, Literal, NamedTuple, get_args
from urllib.parse import quote, unquote

Channel = Literal["book", "trade", "ticker"]
CHANNELS: Final[tuple[Channel, ...]] = get_args(Channel)

RAW_TABLE: Final = "raw"
DEADLETTER_TABLE: Final = "deadletter"
PARQUET_TABLES: Final = ("hf", "bars", "trades", "ticker", "ibars")
# The sink's recovery journal: the files of chunks whose offsets may not be committed yet
# (docs/design.md "Delivery guarantees"); s3_sync leaves those files alone.
SINK_JOURNAL_DIR: Final = ".sink/pending"

# Same bound as message validation (messages.decoding.MAX_SYMBOL_LEN), so any symbol the
# pipeline accepts has a partition unless its encoding outgrows a file name.
MAX_VALUE_CHARS: Final = 128
# NAME_MAX on Linux/macOS filesystems; S3 allows longer keys, but the local mirror must hold them.
MAX_COMPONENT_BYTES: Final = 255
# pyarrow's and Hive's name for a null partition value: a value spelled like this reads back as null.
HIVE_NULL: Final = "__HIVE_DEFAULT_PARTITION__"

_TABLE_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
MS_PER_DAY: Final = 86_400_000
_EPOCH_ORDINAL: Final = dt.date(1970, 1, 1).toordinal()


def check_value(value: str, *, key: str = "partition value") -> str:
    """Return `value` if it can be a partition value, else raise ValueError saying why."""
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{key} is empty")
    if len(value) > MAX_VALUE_CHARS:
        raise ValueError(f"{key} is longer than {MAX_VALUE_CHARS} characters: {value[:40]!r}...")
    if not value.isprintable():
        raise ValueError(f"{key} contains control or non-printable characters: {value!r}")
    if value == HIVE_NULL:
        raise ValueError(f"{key} {HIVE_NULL!r} would read back as null")
    return value


def encode_value(value: str) -> str:
    """Percent-encode a checked partition value the way pyarrow's and DuckDB's writers do."""
    return quote(check_value(value), safe="")


def decode_value(text: str, *, key: str = "partition value") -> str:
    """Undo `encode_value`, strictly: malformed escapes or non-UTF-8 bytes raise ValueError.

    pyarrow silently drops a segment it cannot decode (the column turns null), so
    the dataset tools must find such paths rather than read past them.
    """
    if _BAD_ESCAPE.search(text):
        raise ValueError(f"{key} {text!r} has a malformed percent escape")
    try:
        value = unquote(text, errors="strict")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{key} {text!r} does not decode to UTF-8") from exc
    return check_value(value, key=key)


def encode_segment(key: str, value: str) -> str:
    """`key=<encoded value>`, one path component that fits a file name."""
    segment = f"{key}={encode_value(value)}"
    if len(segment) > MAX_COMPONENT_BYTES:  # encoded text is ASCII: characters are bytes
        raise ValueError(
            f"{key} {value[:40]!r} encodes to {len(segment)} bytes, over the {MAX_COMPONENT_BYTES}-byte "
            "limit for one path component"
        )
    return segment


def parse_segment(segment: str, key: str) -> str:
    """Decoded value of a `key=<encoded>` component; ValueError if the key differs or the value is bad."""
    name, sep, text = segment.partition("=")
    if not sep or name != key:
        raise ValueError(f"expected a {key}=<value> directory, got {segment!r}")
    if key == "date":
        return check_date(text)
    return decode_value(text, key=key)


def check_date(date: str) -> str:
    """Return `date` if it is a real calendar date spelled YYYY-MM-DD, else raise ValueError."""
    if not isinstance(date, str) or not _DATE.fullmatch(date):
        raise ValueError(f"date must be YYYY-MM-DD, got {date!r}")
    try:
        dt.date.fromisoformat(date)
    except ValueError as exc:
        raise ValueError(f"date {date!r} is not a calendar date") from exc
    return date


@lru_cache(maxsize=4096)
def _date_of_day(day: int) -> str:
    return dt.date.fromordinal(_EPOCH_ORDINAL + day).isoformat()


# The day `utc_date` answered last: [start, end) ms and its date. One tuple, replaced whole, so
# threads calling it together each read a consistent one.
_last_day: tuple[int, int, str] = (0, 0, "")


def utc_date(ts_ms: int) -> str:
    """UTC calendar date (YYYY-MM-DD) of a millisecond epoch timestamp.

    Cached per day: writers call this once per row and the archive once per line, and
    consecutive calls almost always fall in the same day (answered by two comparisons).
    """
    global _last_day
    start, end, date = _last_day
    if type(ts_ms) is int and start <= ts_ms < end:
        return date
    if isinstance(ts_ms, bool) or not isinstance(ts_ms, int):
        raise ValueError(f"ts must be integer milliseconds since the epoch, got {ts_ms!r}")
    day = ts_ms // MS_PER_DAY
    date = _date_of_day(day)
    _last_day = (day * MS_PER_DAY, day * MS_PER_DAY + MS_PER_DAY, date)
    return date


def check_table(table: str) -> str:
    """Return `table` if it is a plain lower-case identifier (it becomes the first path component)."""
    if not isinstance(table, str) or not _TABLE_NAME.fullmatch(table):
        raise ValueError(f"table name must match {_TABLE_NAME.pattern}, got {table!r}")
    return table


def partition_dir(table: str, exchange: str, symbol: str, date: str) -> str:
    """`<table>/exchange=<enc>/symbol=<enc>/date=YYYY-MM-DD`, relative and POSIX."""
    return "/".join(
        (
            check_table(table),
            encode_segment("exchange", exchange),
            encode_segment("symbol", symbol),
            f"date={check_date(date)}",
        )
    )


def raw_partition_dir(exchange: str, channel: Channel, date: str) -> str:
    """`raw/exchange=<enc>/channel=<book|trade|ticker>/date=YYYY-MM-DD`, relative and POSIX."""
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}, got {channel!r}")
    return f"{RAW_TABLE}/{encode_segment('exchange', exchange)}/channel={channel}/date={check_date(date)}"


def deadletter_dir(date: str) -> str:
    """`deadletter/date=YYYY-MM-DD`, where rejected messages are kept when no Kafka is around."""
    return f"{DEADLETTER_TABLE}/date={check_date(date)}"


class ParquetPartition(NamedTuple):
    """One `<table>/exchange=/symbol=/date=` directory, values decoded."""

    table: str
    exchange: str
    symbol: str
    date: str

    @property
    def path(self) -> str:
        """The directory in canonical (encoded) form."""
        return partition_dir(self.table, self.exchange, self.symbol, self.date)


def parse_partition_dir(path: str) -> ParquetPartition:
    """Inverse of `partition_dir`; ValueError naming the first component that is wrong."""
    parts = path.strip("/").split("/")
    if len(parts) != 4:
        raise ValueError(f"expected <table>/exchange=../symbol=../date=.., got {path!r}")
    return ParquetPartition(
        check_table(parts[0]),
        parse_segment(parts[1], "exchange"),
        parse_segment(parts[2], "symbol"),
        parse_segment(parts[3], "date"),
    )
