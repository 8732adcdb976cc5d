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
from fluxforge_common.messages.decoding import MAX_QUANTITY, MIN_QUANTITY
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_a_batch_whose_keys_are_not_utf8_or_that_nests_too_deeply_is_refused_whole() -> None:
    for raw, reason in ((b'{"\xff":1}', "not UTF-8"), (b"[" * 300_000 + b"]" * 300_000, "nested too deeply")):
        (result,) = decode_batch(raw)
        assert isinstance(result, Rejection) and reason in result.reason and result.raw == raw


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


def _book_reason(bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> str | None:
    """The book rules level by level (bids first, then asks, then crossing): the first broken one."""
    for levels, side, descending in ((bids, "bids", True), (asks, "asks", False)):
        if not levels:
            return f"empty book: no {side}"
        for i, (price, size) in enumerate(levels, 1):
            if price <= 0:
                return f"{side} level {i}: price {price} is not positive"
            if size <= 0:
                return f"{side} level {i}: size {size} is not positive"
            for value in (price, size):
                if not MIN_QUANTITY <= value < MAX_QUANTITY:
                    return f"{side} level {i}: {value} is outside 1e-30..1e+30"
            if i > 1 and (price >= levels[i - 2][0] if descending else price <= levels[i - 2][0]):
                return f"{side} level {i}: prices not strictly {'descending' if descending else 'ascending'}"
    if bids[0][0] >= asks[0][0]:
        return f"crossed or locked book: best bid {bids[0][0]} >= best ask {asks[0][0]}"
    return None


def _side(prices: list[float], descending: bool) -> st.SearchStrategy[list[tuple[float, float]]]:
    """A valid side from `prices`, or one with a level's price or size replaced by any value."""
    valid = st.lists(st.sampled_from(prices), unique=True, max_size=4).map(
        lambda chosen: [(p, 1.0) for p in sorted(chosen, reverse=descending)]
    )

    def replaced(
        side: list[tuple[float, float]], at: int, price: bool, value: float
    ) -> list[tuple[float, float]]:
        return [((value, q) if price else (p, value)) if i == at else (p, q) for i, (p, q) in enumerate(side)]

    any_value = st.sampled_from([-1.0, 0.0, 1e-300, 1e-30, 99.5, 100.0, 100.5, 1e30, 5e300])
    return valid | st.builds(replaced, valid, st.integers(0, 3), st.booleans(), any_value)


@settings(max_examples=300, deadline=None)
@given(bids=_side([99.0, 99.5, 100.0, 100.5], True), asks=_side([100.0, 100.5, 101.0, 101.5], False))
def test_a_book_is_accepted_as_it_was_sent_exactly_when_every_level_rule_holds(
    bids: list[tuple[float, float]], asks: list[tuple[float, float]]
) -> None:
    result = decode_tick(orjson.dumps({**GOOD_BOOK, "bids": bids, "asks": asks}))
    reason = _book_reason(bids, asks)
    if reason is None:
        assert isinstance(result, DecodedTick) and isinstance(result.tick, BookTick)
        assert (result.tick.bids.pairs(), result.tick.asks.pairs()) == (bids, asks)
    else:
        assert isinstance(result, Rejection) and result.reason == reason
