"""A trade's row made natively: the keys, their order and the values of the Python function it
replaced (`python_trade_row`, kept as the oracle)."""

from __future__ import annotations

from typing import Any, Literal

from fluxforge_common.messages.envelopes import TradeTick
from fluxforge_native import Levels, trade_row
from hypothesis import given, settings
from hypothesis import strategies as st


def python_trade_row(
    tick: TradeTick, event_ms: int, bids: Levels | None, asks: Levels | None, prev_trade_ms: int | None
) -> dict[str, Any]:
    price, amount = tick.price, tick.amount
    sign = 1 if tick.side == "buy" else -1
    row: dict[str, Any] = {
        "exchange": tick.exchange,
        "symbol": tick.symbol,
        "ts": event_ms,
        "recv_ts": tick.recv_ts,
        "id": tick.id,
        "price": price,
        "amount": amount,
        "side": tick.side,
        "sign": sign,
        "notional": price * amount,
        "signed_amount": sign * amount,
        "best_bid_before": None,
        "best_ask_before": None,
        "mid_before": None,
        "spread_before": None,
        "trade_vs_mid_bps": None,
        "effective_spread_bps": None,
        "price_position": None,
        "depth_at_price": None,
        "latency_ms": None if tick.ts is None else tick.recv_ts - tick.ts,
        "ms_since_prev_trade": None if prev_trade_ms is None else event_ms - prev_trade_ms,
    }
    if bids and asks:
        pb, pa = bids[0][0], asks[0][0]
        mid = (pb + pa) / 2
        vs_mid = sign * (price - mid) / mid * 1e4
        row["best_bid_before"] = pb
        row["best_ask_before"] = pa
        row["mid_before"] = mid
        row["spread_before"] = pa - pb
        row["trade_vs_mid_bps"] = vs_mid
        row["effective_spread_bps"] = 2 * vs_mid
        if pb < price < pa:
            row["price_position"] = "inside"
        elif price in (pb, pa):
            row["price_position"] = "at"
        else:
            row["price_position"] = "through"
        resting = asks if sign > 0 else bids
        row["depth_at_price"] = next((q for p, q in resting if p == price), 0.0)
    return row


SIZE = st.floats(1e-6, 1e6)
# Prices a few ticks apart, so that a trade often lands on a level, at the touch or inside it.
STEPS = st.lists(st.tuples(st.integers(1, 3), SIZE), min_size=1, max_size=5)


@st.composite
def book(draw: st.DrawFn) -> tuple[Levels | None, Levels | None, list[float]]:
    """Bids and asks around a mid on a tick grid (either side may be missing or empty), and the
    prices a trade may take: every level's, the touch's, inside and outside."""
    tick = draw(st.sampled_from([0.01, 0.5, 1e-5]))
    mid = draw(st.integers(1_000, 100_000)) * tick
    gap = draw(st.integers(1, 3))
    bids, asks, price = [], [], mid - gap * tick
    for step, size in draw(STEPS):
        bids.append((price, size))
        price -= step * tick
    price = mid + gap * tick
    for step, size in draw(STEPS):
        asks.append((price, size))
        price += step * tick
    prices = [p for p, _ in bids + asks] + [mid, mid - 100 * tick, mid + 100 * tick]
    bid_side = draw(st.sampled_from(["all", "all", "all", "empty", "none"]))
    ask_side = draw(st.sampled_from(["all", "all", "all", "empty", "none"]))

    def levels(pairs: list[tuple[float, float]], which: str) -> Levels | None:
        return None if which == "none" else Levels.from_pairs([] if which == "empty" else pairs)

    return levels(bids, bid_side), levels(asks, ask_side), prices


@settings(max_examples=500, deadline=None)
@given(
    book(),
    st.data(),
    SIZE,
    st.sampled_from(["buy", "sell"]),
    st.none() | st.integers(1_700_000_000_000, 1_800_000_000_000),
    st.none() | st.text(max_size=4),
    st.none() | st.integers(1_600_000_000_000, 1_900_000_000_000),
)
def test_the_row_is_what_the_python_function_made(
    side_book: tuple[Levels | None, Levels | None, list[float]],
    data: st.DataObject,
    amount: float,
    side: Literal["buy", "sell"],
    ts: int | None,
    trade_id: str | None,
    prev_trade_ms: int | None,
) -> None:
    bids, asks, prices = side_book
    price = data.draw(st.sampled_from(prices) | st.floats(1e-3, 1e7))
    recv_ts = 1_750_000_000_000
    tick = TradeTick("binance", "BTC/USDT", recv_ts, ts, price, amount, side, trade_id)
    event_ms = recv_ts if ts is None else ts
    native = trade_row(tick, event_ms, bids, asks, prev_trade_ms)
    assert repr(native) == repr(python_trade_row(tick, event_ms, bids, asks, prev_trade_ms))
