"""Enriched trade and ticker rows: each trade set against the book before it (made natively:
`fluxforge_native.trade_row`), each ticker's own spread."""

from __future__ import annotations

from typing import Any

from fluxforge_native import trade_row as trade_row

from fluxforge_common.messages.envelopes import TickerTick


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
