"""Builders of raw envelopes (one symbol, `ex` `BTC/USDT`) and a helper that runs them through the engine."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import orjson
from fluxforge_common.config import StateConfig
from fluxforge_common.features import EngineOutput, FeatureEngine
from fluxforge_common.messages import DecodedTick, decode_tick

from tests.support.times import T0


def book(t: int, bids: list[tuple[float, float]], asks: list[tuple[float, float]], **extra: Any) -> bytes:
    msg = {
        "type": "book",
        "exchange": "ex",
        "symbol": "BTC/USDT",
        "ts": t,
        "recv_ts": t + 3,
        "bids": bids,
        "asks": asks,
    }
    return orjson.dumps(msg | extra)


def trade(t: int, price: float, amount: float, side: str = "buy", **extra: Any) -> bytes:
    msg = {
        "type": "trade",
        "exchange": "ex",
        "symbol": "BTC/USDT",
        "ts": t,
        "recv_ts": t + 3,
        "price": price,
        "amount": amount,
        "side": side,
    }
    return orjson.dumps(msg | extra)


def ticker(t: int | None, **fields: Any) -> bytes:
    msg = {"type": "ticker", "exchange": "ex", "symbol": "BTC/USDT", "ts": t, "recv_ts": (t or T0) + 3}
    return orjson.dumps(msg | fields)


def decoded(raw: bytes) -> DecodedTick:
    item = decode_tick(raw)
    assert isinstance(item, DecodedTick), item
    return item


def run_engine(lines: Iterable[bytes], cfg: StateConfig | None = None, flush: bool = True) -> EngineOutput:
    engine = FeatureEngine(cfg or StateConfig())
    out = EngineOutput()
    for raw in lines:
        engine.process(decoded(raw), out)
    if flush:
        engine.flush(out)
    return out


def event_ms(line: bytes) -> int:
    msg = orjson.loads(line)
    return int(msg["recv_ts"] if msg["ts"] is None else msg["ts"])


def trades_delayed(lines: Iterable[bytes], max_delay_ms: int, seed: int = 0) -> list[bytes]:
    """`lines` in event-time order, except that each trade arrives up to `max_delay_ms` late.

    A delayed trade comes after the book and ticker ticks stamped later than it, as when an
    exchange sends trades and depth diffs on separate connections.
    """
    rng = random.Random(seed)
    ordered = sorted(lines, key=event_ms)
    arrival = [
        event_ms(line) + (rng.randint(0, max_delay_ms) if orjson.loads(line)["type"] == "trade" else 0)
        for line in ordered
    ]
    return [ordered[i] for i in sorted(range(len(ordered)), key=lambda i: (arrival[i], i))]
