"""Book envelopes decoded natively: exactly the `BookTick` msgspec's path makes of a valid book, or left
to that path, whose checks word what is wrong."""

from __future__ import annotations

import struct
from typing import Any

import msgspec
import orjson
import pytest
from fluxforge_common.messages import BookTick, DecodedTick, Rejection, decode_tick, decoding
from fluxforge_common.messages.decoding import MAX_QUANTITY, MAX_TS_MS, MIN_QUANTITY, MIN_TS_MS
from fluxforge_common.messages.envelopes import BookWire
from fluxforge_native import BookDecoder, Levels
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.bad_ticks import GOOD_BOOK

_native = BookDecoder(BookTick, (MIN_TS_MS, MAX_TS_MS), (MIN_QUANTITY, MAX_QUANTITY))
_wire = msgspec.json.Decoder(BookWire)


def _by_msgspec(raw: bytes) -> BookTick:
    """The book msgspec's path makes of `raw` (what `decode_tick` falls back to)."""
    wire = _wire.decode(raw)
    bids, asks = Levels.from_json(wire.bids, "$.bids"), Levels.from_json(wire.asks, "$.asks")
    return BookTick(wire.exchange, wire.symbol, wire.recv_ts, wire.ts, bids, asks, wire.seq)


def _same(a: BookTick, b: BookTick) -> None:
    assert (a.exchange, a.symbol, a.recv_ts, a.ts, a.seq) == (b.exchange, b.symbol, b.recv_ts, b.ts, b.seq)
    for side_a, side_b in ((a.bids, b.bids), (a.asks, b.asks)):
        assert [struct.pack("<dd", *level) for level in side_a] == [
            struct.pack("<dd", *level) for level in side_b
        ]


_levels = st.lists(st.tuples(st.floats(1e-30, 1e30), st.floats(1e-30, 1e30)), max_size=6)
# Valid sides (prices strictly ordered away from a mid), so that valid books are common.
_steps = st.lists(st.tuples(st.floats(1e-4, 0.05), st.floats(1e-6, 1e3)), min_size=1, max_size=6)
_times = st.integers(MIN_TS_MS - 2, MAX_TS_MS + 1) | st.integers(-(10**17), 10**17)
# Unknown fields as JSON writes them without escapes (a string with an escape is msgspec's), and
# no lone surrogates, which UTF-8 cannot hold.
_plain_text = st.text(
    st.characters(min_codepoint=0x20, blacklist_characters='"\\', blacklist_categories=["Cs"]), max_size=5
)
_int64 = st.integers(-(2**63), 2**63 - 1)
_extra = st.recursive(
    st.none() | st.booleans() | _int64 | st.floats(allow_nan=False, allow_infinity=False) | _plain_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_plain_text, inner, max_size=3),
    max_leaves=8,
)
ENVELOPES = st.fixed_dictionaries(
    {
        "type": st.just("book"),
        "exchange": st.sampled_from(["binanceus", "kraken", "ex.1"]),
        "symbol": st.sampled_from(["BTC/USDT", "ETH/USD:USD", "\u00e9/\u20ac"]),
        "ts": st.none() | _times,
        "recv_ts": _times,
        "bids": _levels,
        "asks": _levels,
    },
    optional={
        "seq": st.none() | st.integers(0, 10**17),
        "_ingest": st.tuples(_int64, _int64),
        "x": _extra,
    },
)


@settings(max_examples=400, deadline=None)
@given(ENVELOPES, st.randoms(use_true_random=False), st.sampled_from([b"", b" ", b"\n "]))
def test_a_plain_book_is_decoded_natively_as_msgspec_decodes_it(
    envelope: dict[str, Any], order: Any, space: bytes
) -> None:
    keys = list(envelope)
    order.shuffle(keys)
    raw = space + orjson.dumps({key: envelope[key] for key in keys}) + space
    book, expected = _native.decode(raw), _by_msgspec(raw)
    if isinstance(decoding._checked(expected, raw), DecodedTick):
        assert book is not None
        _same(book, expected)
    else:
        assert book is None  # msgspec's path words why


def _side(mid: float, steps: list[tuple[float, float]], sign: int) -> list[tuple[float, float]]:
    levels, price = [], mid
    for step, size in steps:
        price *= 1 + sign * step
        levels.append((price, size))
    return levels


@settings(max_examples=200, deadline=None)
@given(ENVELOPES, st.floats(20, 1e6), _steps, _steps)
def test_a_valid_book_is_decoded_natively(
    envelope: dict[str, Any],
    mid: float,
    bid_steps: list[tuple[float, float]],
    ask_steps: list[tuple[float, float]],
) -> None:
    bids, asks = _side(mid, bid_steps, -1), _side(mid, ask_steps, 1)
    ts = envelope["recv_ts"] % (MAX_TS_MS - MIN_TS_MS) + MIN_TS_MS
    raw = orjson.dumps({**envelope, "bids": bids, "asks": asks, "ts": ts, "recv_ts": ts})
    book = _native.decode(raw)
    assert book is not None and isinstance(decoding._checked(book, raw), DecodedTick)
    _same(book, _by_msgspec(raw))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"asks": [[99.0, 1.0]]}, "crossed or locked book"),
        ({"bids": [[100.0, 1.0], [100.0, 2.0]]}, "bids level 2: prices not strictly descending"),
        ({"asks": [[100.5, 1.0], [100.5, 2.0]]}, "asks level 2: prices not strictly ascending"),
        ({"bids": [[100.0, 0.0]]}, "bids level 1: size 0.0 is not positive"),
        ({"asks": [[MAX_QUANTITY, 1.0]]}, "asks level 1: 1e+30 is outside"),
        ({"bids": [[100.0, MIN_QUANTITY / 2]]}, "bids level 1: 5e-31 is outside"),
        ({"bids": []}, "empty book: no bids"),
        ({"ts": MIN_TS_MS - 1}, f"ts={MIN_TS_MS - 1} is not milliseconds"),
        ({"recv_ts": MAX_TS_MS}, f"recv_ts={MAX_TS_MS} is not milliseconds"),
    ],
)
def test_an_invalid_book_is_left_to_the_checks_that_word_why(change: dict[str, Any], reason: str) -> None:
    raw = orjson.dumps({**GOOD_BOOK, **change})
    assert _native.decode(raw) is None
    result = decode_tick(raw)
    assert isinstance(result, Rejection) and result.reason.startswith(reason), result


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type":"book","exchange":"bin\\u0061nceus","symbol":"BTC/USDT","ts":1765500000000,"recv_ts":1765500000002,"bids":[[1,1]],"asks":[[2,1]]}',
        b'{"type":"book","exchange":"x","exchange":"y","symbol":"BTC/USDT","ts":1765500000000,"recv_ts":1765500000002,"bids":[[1,1]],"asks":[[2,1]]}',
        b'{"type":"book","exchange":"x","symbol":"BTC/USDT","ts":01765500000000,"recv_ts":1765500000002,"bids":[[1,1]],"asks":[[2,1]]}',
        b'{"type":"book","exchange":"x","symbol":"BTC/USDT","ts":1765500000000,"recv_ts":1765500000002.0,"bids":[[1,1]],"asks":[[2,1]]}',
        b'{"type":"book","exchange":"x","symbol":"BTC/USDT","ts":1765500000000,"recv_ts":12345678901234567890,"bids":[[1,1]],"asks":[[2,1]]}',
        b'{"type":"book","exchange":"x","symbol":"BTC/USDT","recv_ts":1765500000002,"bids":[[1,1]],"asks":[[2,1]]}',
        b'{"type":"book","exchange":"x","symbol":"BTC/USDT","ts":1765500000000,"recv_ts":1765500000002,"bids":[[01.5,1]],"asks":[[2,1]]}',
        b'{"type":"book","exchange":"x","symbol":"BTC/USDT","ts":1765500000000,"recv_ts":1765500000002,"bids":[["1",1]],"asks":[[2,1]]}',
        b'{"type":"book","exchange":"x","symbol":"BTC/USDT","ts":1765500000000,"recv_ts":1765500000002,"bids":[[1,1]],"asks":[[2,1]]} x',
        b'{"type":"book","exchange":"x","symbol":"BTC/USDT","ts":1765500000000,"recv_ts":1765500000002,"bids":[[1,1]],"asks":[[2,1]],}',
        b'{"type":"trade","exchange":"x","symbol":"BTC/USDT","ts":1765500000000,"recv_ts":1765500000002,"bids":[[1,1]],"asks":[[2,1]]}',
        b'{"type":"book","exchange":"x","symbol":"BTC/USDT","ts":1765500000000,"recv_ts":1765500000002,"bids":[[1,1]],"asks":[[2,1]],"n":"\\n"}',
        b'{"type":"book","exchange":"\x01","symbol":"BTC/USDT","ts":1765500000000,"recv_ts":1765500000002,"bids":[[1,1]],"asks":[[2,1]]}',
        b'{"type":"book","exchange":"\xff","symbol":"BTC/USDT","ts":1765500000000,"recv_ts":1765500000002,"bids":[[1,1]],"asks":[[2,1]]}',
        b"{}",
        b"[]",
        b"",
    ],
    ids=[
        "escape", "repeated-field", "leading-zero", "float-time", "big-int", "missing-ts", "leading-zero-level",
        "string-level", "trailing-text", "trailing-comma", "trade", "escape-in-extra", "control-char",
        "not-utf8", "empty-object", "array", "nothing",
    ],
)  # fmt: skip
def test_anything_but_the_plain_shape_is_left_to_msgspec(raw: bytes) -> None:
    assert _native.decode(raw) is None
    result = decode_tick(raw)
    try:
        expected = _by_msgspec(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, ValueError):
        assert isinstance(result, Rejection)  # in msgspec's words, as before the native path
        return
    if isinstance(result, DecodedTick):  # else refused by validation, as any decoded book may be
        _same(result.tick, expected)  # type: ignore[arg-type]


def test_names_are_shared_between_ticks_and_only_bytes_are_read() -> None:
    raw = orjson.dumps(GOOD_BOOK)
    first, second = _native.decode(raw), _native.decode(raw)
    assert first is not None and second is not None
    assert first.symbol is second.symbol and first.exchange is second.exchange
    assert _native.decode(bytearray(raw)) is None  # type: ignore[arg-type]  # msgspec's path takes any buffer
