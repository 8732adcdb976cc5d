"""RowReader: a feature message it takes becomes exactly the columns `ColumnBuffer.append` makes
of what orjson decodes; anything else it leaves to that path (returns None), never guessing."""

from __future__ import annotations

import json
import struct
from typing import Any

import orjson
import pyarrow as pa
import pytest
from fluxforge_common.dataset.schema import column_kinds
from fluxforge_common.messages.decoding import MAX_TS_MS, MIN_TS_MS
from fluxforge_common.writers.parquet import row_reader
from fluxforge_native import ColumnBuffer, ReadRows, RowReader
from hypothesis import assume, given, settings
from hypothesis import strategies as st

SCHEMA = pa.schema(
    [
        ("exchange", pa.string()),
        ("symbol", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("price", pa.float64()),
        ("count", pa.int64()),
        ("flag", pa.bool_()),
        ("note", pa.string()),
    ]
)
KINDS = column_kinds(SCHEMA)
T0 = 1_765_497_600_000
DAY_MS = 86_400_000
VALUES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
ROW = st.fixed_dictionaries(
    {
        "exchange": st.sampled_from(["binanceus", "kraken", "ex\u00e9"]),
        "symbol": st.sampled_from(["BTC/USDT", "ETH/USDT"]),
        "ts": st.integers(T0 - 2 * DAY_MS, T0 + 2 * DAY_MS),
    },
    optional={
        "price": st.none() | st.floats() | st.integers(-(2**60), 2**60),
        "count": st.none() | st.integers(-(2**63), 2**63 - 1) | st.floats(),
        "flag": st.none() | st.booleans() | st.integers(0, 1),
        "note": st.none() | st.text(max_size=8),
    },
)
MESSAGES = st.lists(ROW, max_size=12)


def _reader() -> RowReader:
    reader = row_reader(SCHEMA)
    assert reader is not None
    return reader


def _buffer() -> ColumnBuffer:
    assert KINDS is not None
    return ColumnBuffer(KINDS)


def _partitions(rows: list[dict[str, Any]]) -> list[tuple[str, str, int, int]]:
    """(exchange, symbol, first ts, rows) per (exchange, symbol, UTC day), in order of first appearance."""
    seen: dict[tuple[str, str, int], list[int]] = {}
    for row in rows:
        seen.setdefault((row["exchange"], row["symbol"], row["ts"] // DAY_MS), []).append(row["ts"])
    return [(exchange, symbol, stamps[0], len(stamps)) for (exchange, symbol, _), stamps in seen.items()]


def _check_as_orjson_and_append(data: bytes, read: ReadRows) -> None:
    """What `read` holds is what orjson decodes of `data`, appended by `ColumnBuffer.append`."""
    decoded = orjson.loads(data)
    rows = [decoded] if isinstance(decoded, dict) else decoded
    partitions = _partitions(rows)
    assert read.partitions() == partitions
    assert len(read) == len(rows)
    assert (read.min_ts, read.max_ts) == (
        (min(row["ts"] for row in rows), max(row["ts"] for row in rows)) if rows else (None, None)
    )
    slots = [len(partitions) - 1 - k for k in range(len(partitions))]  # not in order of appearance
    appended = _buffer()
    for row in rows:
        key = (row["exchange"], row["symbol"], row["ts"] // DAY_MS)
        slot = slots[[(e, s, t // DAY_MS) for e, s, t, _ in partitions].index(key)]
        assert appended.append([row], slot)
    extended = _buffer()
    assert extended.extend(read, slots)
    assert extended.take() == appended.take()


def _plain(rows: list[dict[str, Any]]) -> bool:
    """Every value is one `ColumnBuffer` takes for its column, written by orjson without escapes."""
    for row in rows:
        price, count, flag, note = (row.get(name) for name in ("price", "count", "flag", "note"))
        if (
            (type(price) is int and abs(price) > 2**53)
            or price != price
            or price in (float("inf"), float("-inf"))
        ):
            return False
        if (count is not None and type(count) is not int) or (flag is not None and type(flag) is not bool):
            return False
        if note is not None and any(c in '"\\' or ord(c) < 0x20 or 0xD800 <= ord(c) < 0xE000 for c in note):
            return False
    return True


@settings(max_examples=400, deadline=None)
@given(MESSAGES)
def test_a_message_taken_is_what_orjson_decodes_appended(rows: list[dict[str, Any]]) -> None:
    try:
        data = orjson.dumps(rows)
    except orjson.JSONEncodeError:
        assume(False)  # a lone surrogate: no feature message holds one
    read = _reader().read(data)
    if read is None:
        assert not _plain(rows)
    else:
        _check_as_orjson_and_append(data, read)


@settings(max_examples=400, deadline=None)
@given(MESSAGES, st.sampled_from([None, 0, 2]), st.booleans(), st.data())
def test_any_spelling_or_damage_is_read_as_orjson_does_or_left_to_it(
    rows: list[dict[str, Any]], indent: int | None, ascii_only: bool, data: st.DataObject
) -> None:
    """Other spellings of the JSON (white space, escapes, one object alone) and bytes changed at
    random: a message is taken only if orjson decodes it, and then read as orjson reads it."""
    message = rows[0] if len(rows) == 1 and data.draw(st.booleans()) else rows
    text = json.dumps(message, indent=indent, ensure_ascii=ascii_only, allow_nan=True).encode()
    if data.draw(st.booleans()) and text:
        at = data.draw(st.integers(0, len(text) - 1))
        text = (
            text[:at]
            + data.draw(st.sampled_from([b"", b" ", b"0", b"-", b".", b"e", b",", b"}", b'"', b"\\"]))
            + text[at + 1 :]
        )
    read = _reader().read(text)
    if read is None:
        return
    _check_as_orjson_and_append(text, read)  # orjson.loads raises if the reader took what it refuses


@settings(max_examples=1000, deadline=None)
@given(
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: orjson.dumps(x).decode())
    | st.from_regex(r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][+-]?[0-9]{1,3})?", fullmatch=True)
)
def test_numbers_are_the_doubles_python_makes_of_them(number: str) -> None:
    """Each path of the number reader (eight digits at a time, one exact scaling, the general
    parser) gives the correctly rounded double, as `float` does."""
    value = json.loads(number)
    data = f'{{"exchange":"a","symbol":"b","ts":{T0},"price":{number}}}'.encode()
    read = _reader().read(data)
    if (type(value) is int and abs(value) > 2**53) or value in (float("inf"), float("-inf")):
        assert read is None
        return
    assert read is not None
    buffer = _buffer()
    assert buffer.extend(read, [0])
    (price,) = struct.unpack("<d", buffer.take()[1][3][3])
    assert struct.pack("<d", price) == struct.pack("<d", float(value))


@pytest.mark.parametrize(
    "row",
    [
        pytest.param('"note":"a\\u0041"', id="escape"),
        pytest.param('"price":1,"price":2', id="duplicate key"),
        pytest.param('"other":1', id="unknown key"),
        pytest.param('"note":["a"]', id="nested"),
        pytest.param('"price":9007199254740993', id="int beyond a double's exact range"),
        pytest.param('"price":1e400', id="float beyond a double"),
        pytest.param('"price":NaN', id="NaN"),
        pytest.param('"price":01', id="leading zero"),
        pytest.param('"price":1.', id="point without digits"),
        pytest.param('"price":true', id="bool as a float"),
        pytest.param('"count":1.0', id="float as an int"),
        pytest.param('"count":9223372036854775808', id="int beyond int64"),
        pytest.param('"count":false', id="bool as an int"),
        pytest.param('"flag":1', id="int as a bool"),
        pytest.param('"note":1', id="int as a string"),
        pytest.param('"price":1,', id="trailing comma"),
    ],
)
def test_a_row_orjson_or_the_columns_would_not_take_as_read_leaves_the_message(row: str) -> None:
    data = f'[{{"exchange":"a","symbol":"b","ts":{T0}}},{{"exchange":"a","symbol":"b","ts":{T0},{row}}}]'
    assert _reader().read(data.encode()) is None


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(b'[{"symbol":"b","ts":1765497600000}]', id="no exchange"),
        pytest.param(b'[{"exchange":null,"symbol":"b","ts":1765497600000}]', id="null exchange"),
        pytest.param(b'[{"exchange":"a","symbol":"b"}]', id="no ts"),
        pytest.param(f'[{{"exchange":"a","symbol":"b","ts":{MIN_TS_MS - 1}}}]'.encode(), id="ts too early"),
        pytest.param(f'[{{"exchange":"a","symbol":"b","ts":{MAX_TS_MS}}}]'.encode(), id="ts too late"),
        pytest.param(b'[{"exchange":"a","symbol":"b","ts":1765497600000}] x', id="trailing bytes"),
        pytest.param(b'[{"exchange":"a","symbol":"b","ts":1765497600000}', id="unclosed"),
        pytest.param(b"[1]", id="not a row"),
        pytest.param(b"1", id="not an array"),
        pytest.param(b"", id="empty"),
    ],
)
def test_a_message_without_partition_keys_or_not_json_is_left(message: bytes) -> None:
    assert _reader().read(message) is None


def test_one_object_is_a_batch_of_one_and_an_empty_array_has_no_rows() -> None:
    one = _reader().read(f' {{"exchange":"a","symbol":"b","ts":{T0}}}\n'.encode())
    assert one is not None and one.partitions() == [("a", "b", T0, 1)]
    empty = _reader().read(b" [ ] ")
    assert empty is not None and len(empty) == 0 and empty.partitions() == []
    assert (empty.min_ts, empty.max_ts) == (None, None)


def test_keys_in_any_order_are_read_and_learnt() -> None:
    reader = _reader()
    for order in (["ts", "symbol", "exchange", "price"], ["price", "exchange", "ts", "symbol"]):
        rows = [
            dict.fromkeys(order) | {"exchange": "a", "symbol": "b", "ts": T0 + i, "price": i / 3}
            for i in range(3)
        ]
        read = reader.read(orjson.dumps(rows))
        assert read is not None
        _check_as_orjson_and_append(orjson.dumps(rows), read)


def test_rows_extend_only_the_columns_they_were_read_for() -> None:
    read = _reader().read(f'[{{"exchange":"a","symbol":"b","ts":{T0}}}]'.encode())
    assert read is not None
    with pytest.raises(ValueError, match="rows read for other columns"):
        ColumnBuffer([("exchange", "str"), ("symbol", "str"), ("ts", "i64")]).extend(read, [0])
    assert KINDS is not None
    renamed = [(name, kind) for name, kind in KINDS if name not in ("price", "count")]
    renamed[3:3] = [("count", "f64"), ("price", "i64")]  # the same kinds in the same places
    assert [kind for _, kind in renamed] == [kind for _, kind in KINDS]
    with pytest.raises(ValueError, match="rows read for other columns"):
        ColumnBuffer(renamed).extend(read, [0])
    with pytest.raises(ValueError, match="2 slots for 1 partitions"):
        _buffer().extend(read, [0, 1])
    buffer = _buffer()
    assert buffer.extend(read, [0])  # rows of this reader now pass by their layout's identity
    other = RowReader(renamed, (MIN_TS_MS, MAX_TS_MS)).read(
        f'[{{"exchange":"a","symbol":"b","ts":{T0}}}]'.encode()
    )
    assert other is not None
    with pytest.raises(ValueError, match="rows read for other columns"):
        buffer.extend(other, [0])
    assert len(buffer) == 1


def test_a_reader_needs_the_partition_columns() -> None:
    with pytest.raises(ValueError, match='rows need a column "ts" of kind i64'):
        RowReader([("exchange", "str"), ("symbol", "str"), ("ts", "f64")], (0, 1))
    with pytest.raises(ValueError, match='column "a" given twice'):
        RowReader([("a", "str"), ("a", "str")], (0, 1))
