"""Every bad case of the corpus is refused with its reason; good envelopes decode unchanged."""

from __future__ import annotations

import orjson
import pytest
from fluxforge_common.messages import (
    BookTick,
    DecodedTick,
    Rejection,
    TickerTick,
    TradeTick,
    decode_batch,
    decode_tick,
)

from tests.support.bad_ticks import BAD_LINES, GOOD_BOOK, GOOD_TICKER, GOOD_TRADE


@pytest.mark.parametrize(("raw", "reason"), BAD_LINES, ids=[f"bad{i}" for i in range(len(BAD_LINES))])
def test_bad_line_is_rejected_with_reason(raw: bytes, reason: str) -> None:
    result = decode_tick(raw)
    assert isinstance(result, Rejection)
    assert reason in result.reason
    assert result.raw == raw


@pytest.mark.parametrize(
    ("good", "kind"), [(GOOD_BOOK, BookTick), (GOOD_TRADE, TradeTick), (GOOD_TICKER, TickerTick)]
)
def test_good_envelopes_decode(good: dict[str, object], kind: type) -> None:
    raw = orjson.dumps({**good, "extra": {"kept": True}})
    result = decode_tick(raw)
    assert isinstance(result, DecodedTick)
    assert type(result.tick) is kind
    assert result.raw == raw  # unknown fields stay in the bytes that get archived


def test_null_optionals_are_accepted() -> None:
    ticker = decode_tick(orjson.dumps({**GOOD_TICKER, "ts": None, "bid": None, "ask": None}))
    trade = decode_tick(orjson.dumps({**GOOD_TRADE, "id": None}))
    assert isinstance(ticker, DecodedTick) and isinstance(trade, DecodedTick)


def test_a_trade_marked_backfilled_decodes_and_an_unmarked_one_is_live() -> None:
    marked = decode_tick(orjson.dumps({**GOOD_TRADE, "backfilled": True}))
    unmarked = decode_tick(orjson.dumps(GOOD_TRADE))
    assert isinstance(marked, DecodedTick) and isinstance(unmarked, DecodedTick)
    assert marked.tick.backfilled is True and unmarked.tick.backfilled is False  # type: ignore[union-attr]


def test_batch_keeps_good_elements_in_order_and_rejects_bad_ones_alone() -> None:
    good = [orjson.dumps({**GOOD_TRADE, "id": str(i)}) for i in range(3)]
    raw = b"[" + b",".join([good[0], b'{"type":"trade"}', good[1], b"17", good[2]]) + b"]"
    results = decode_batch(raw)
    assert [type(r).__name__ for r in results] == [
        "DecodedTick",
        "Rejection",
        "DecodedTick",
        "Rejection",
        "DecodedTick",
    ]
    assert [r.raw for r in results if isinstance(r, DecodedTick)] == good
    assert results[1].raw == b'{"type":"trade"}'


def test_batch_that_is_not_json_is_rejected_whole() -> None:
    (result,) = decode_batch(b'[{"type":"trade",')
    assert isinstance(result, Rejection) and result.reason.startswith("batch: invalid JSON")


def test_single_object_is_a_batch_of_one() -> None:
    raw = orjson.dumps(GOOD_TRADE)
    (result,) = decode_batch(raw)
    assert isinstance(result, DecodedTick) and result.raw == raw
