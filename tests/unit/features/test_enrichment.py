"""Enriched trade and ticker rows, including their null cases."""

from __future__ import annotations

import pytest

from tests.support.ticks import book, run_engine, ticker, trade
from tests.support.times import T0

BOOK = book(T0 + 10, [(100.0, 1.5), (99.5, 2.0)], [(100.5, 0.7), (101.0, 3.0)])


def test_trade_before_any_book_and_first_trade() -> None:
    (row,) = run_engine([trade(T0 + 5, 100.2, 0.5, side="sell", id="1")]).trades
    assert row["sign"] == -1 and row["signed_amount"] == -0.5
    assert row["notional"] == pytest.approx(50.1)
    assert row["mid_before"] is None and row["spread_before"] is None and row["trade_vs_mid_bps"] is None
    assert row["price_position"] is None and row["depth_at_price"] is None
    assert row["ms_since_prev_trade"] is None
    assert row["latency_ms"] == 3


def test_trade_against_the_book() -> None:
    rows = run_engine(
        [BOOK, trade(T0 + 20, 100.5, 0.2, id="1"), trade(T0 + 45, 99.0, 0.1, side="sell", id="2")]
    ).trades
    at_ask, through = rows
    assert at_ask["mid_before"] == 100.25 and at_ask["spread_before"] == 0.5
    assert at_ask["trade_vs_mid_bps"] == pytest.approx(0.25 / 100.25 * 1e4)
    assert at_ask["effective_spread_bps"] == pytest.approx(2 * 0.25 / 100.25 * 1e4)
    assert at_ask["price_position"] == "at" and at_ask["depth_at_price"] == 0.7
    assert through["trade_vs_mid_bps"] == pytest.approx(1.25 / 100.25 * 1e4)
    assert through["price_position"] == "through" and through["depth_at_price"] == 0.0
    assert through["ms_since_prev_trade"] == 25


def test_inside_trade_and_null_exchange_time() -> None:
    raw = trade(T0 + 20, 100.25, 0.2, id="1")
    raw = raw.replace(b'"ts":1765500000020', b'"ts":null')
    (row,) = run_engine([BOOK, raw]).trades
    assert row["price_position"] == "inside"
    assert row["latency_ms"] is None and row["ts"] == T0 + 23  # event time falls back to recv_ts


def test_ticker_rows() -> None:
    full, one_sided = run_engine(
        [ticker(T0, bid=10.0, ask=10.5, bid_size=1.0, last=10.2), ticker(T0 + 5, bid=10.0)]
    ).ticker
    assert full["mid"] == 10.25 and full["spread"] == 0.5 and full["rel_spread"] == pytest.approx(0.5 / 10.25)
    assert full["latency_ms"] == 3 and full["ask_size"] is None
    assert one_sided["mid"] is None and one_sided["spread"] is None and one_sided["rel_spread"] is None


def test_rejected_trades_do_not_shift_later_rows() -> None:
    from fluxforge_common.messages import Rejection, decode_tick

    good = [BOOK, trade(T0 + 20, 100.5, 0.2, id="1"), trade(T0 + 60, 100.5, 0.2, id="2")]
    bad = [
        trade(T0 + 40, -1.0, 0.2, id="x"),
        trade(T0 + 41, 100.5, 0.0, id="y"),
        trade(T0 + 42, 100.5, 1.0, side="hold"),
    ]
    assert all(isinstance(decode_tick(raw), Rejection) for raw in bad)
    rows = run_engine(good).trades
    assert rows[1]["ms_since_prev_trade"] == 40
