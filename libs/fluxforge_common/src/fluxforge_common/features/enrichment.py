"""Enriched trade and ticker rows: each trade set against the book before it, each ticker's own spread."""

from __future__ import annotations

from typing import Any

from fluxforge_native import Levels

from fluxforge_common.messages.envelopes import TickerTick, TradeTick


def trade_row(
    tick: TradeTick,
    event_ms: int,
    bids: Levels | None,
    asks: Levels | None,
    prev_trade_ms: int | None,
) -> dict[str, Any]:
    """One trade against the book as it stood after the last book event before it."""
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
        # Liquidity the aggressor met at its own price: asks for a buy, bids for a sell.
        resting = asks if sign > 0 else bids
        row["depth_at_price"] = next((q for p, q in resting if p == price), 0.0)
    return row


def ticker_row(tick: TickerTick, event_ms: int) -> dict[str, Any]:
    bid, ask = tick.bid, tick.ask
    mid = spread = rel = None
    if bid is not None and ask is not None:
        mid = (bid + ask) / 2
        spread = ask - bid
        rel = spread / mid
    return {
        "exchange": tick.exchange,
        "symbol": tick.symbol,
        "ts": event_ms,
        "recv_ts": tick.recv_ts,
        "bid": bid,
        "ask": ask,
        "bid_size": tick.bid_size,
        "ask_size": tick.ask_size,
        "last": tick.last,
        "base_volume": tick.base_volume,
        "quote_volume": tick.quote_volume,
        "mid": mid,
        "spread": spread,
        "rel_spread": rel,
        "latency_ms": None if tick.ts is None else tick.recv_ts - tick.ts,
    }
