"""MarketSimulator: all configured markets merged into one stream of raw envelopes.

Markets step in event-time order (they share fair prices), each envelope gets
a collector receive time a few ms later, and a small reorder buffer releases
envelopes by receive time, as one collector would see them. Wire effects
(latency, missing ticker timestamps) draw from their own generators so the
markets themselves are the same whatever renders them.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterator

import orjson

from fluxforge_common.simulator.config import SimulatorConfig
from fluxforge_common.simulator.fair import FairValue
from fluxforge_common.simulator.market import SymbolMarket
from fluxforge_common.simulator.specs import asset_spec, base_asset

MAX_LATENCY_MS = 80


# exchange -> (minimum latency ms, mean extra latency ms, share of tickers with "ts": null)
_WIRE_PROFILES = {"kraken": (5, 25.0, 0.02)}
_DEFAULT_WIRE = (2, 10.0, 0.0)


class _Wire:
    """How one exchange delivers a symbol: latency, and tickers that sometimes lack `ts`."""

    __slots__ = ("_extra_rate", "_min_ms", "_null_rate", "_recv_ts", "_rng")

    def __init__(self, seed: int, exchange: str, symbol: str) -> None:
        self._rng = random.Random(f"{seed}:wire:{exchange}:{symbol}")
        self._min_ms, extra_ms, self._null_rate = _WIRE_PROFILES.get(exchange, _DEFAULT_WIRE)
        self._extra_rate = 1.0 / extra_ms
        self._recv_ts = 0

    def recv_ts(self, ts: int) -> int:
        """Receive time of an envelope sent at `ts`; one connection per symbol keeps its order."""
        latency = self._min_ms + int(self._rng.expovariate(self._extra_rate))
        recv = ts + (latency if latency < MAX_LATENCY_MS else MAX_LATENCY_MS)
        if recv < self._recv_ts:
            recv = self._recv_ts
        self._recv_ts = recv
        return recv

    def ticker_ts(self, ts: int) -> int | None:
        """The ticker's exchange time, or None where the exchange sometimes gives none."""
        return None if self._null_rate and self._rng.random() < self._null_rate else ts


def build_markets(config: SimulatorConfig) -> list[SymbolMarket]:
    """Fresh markets for every configured symbol, in config order, sharing one fair price per asset."""
    fairs: dict[str, FairValue] = {}
    markets = []
    for exchange, symbols in config.exchanges.items():
        for symbol in symbols:
            base = base_asset(symbol)
            if base not in fairs:
                fairs[base] = FairValue(config.seed, base, asset_spec(base), config.start_ms)
            markets.append(SymbolMarket(config, exchange, symbol, fairs[base]))
    return markets


class MarketSimulator:
    """Deterministic simulated market: `ticks()` yields compact JSON envelopes."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config

    def ticks(self) -> Iterator[bytes]:
        """Endless envelopes in non-decreasing `recv_ts`; each call starts afresh from `config.seed`.

        A market order yields one trade per level it takes, then the book; all
        three channels of a symbol share one connection, so per symbol both
        `ts` and `recv_ts` never decrease.
        """
        levels = self.config.levels
        markets = build_markets(self.config)
        wires = [_Wire(self.config.seed, m.exchange, m.symbol) for m in markets]
        schedule = [(m.next_ts, i) for i, m in enumerate(markets)]
        heapq.heapify(schedule)
        pending: list[tuple[int, int, bytes]] = []  # (recv_ts, arrival order, envelope)
        order = itertools.count()
        dumps = orjson.dumps
        push, pop = heapq.heappush, heapq.heappop
        while True:
            ts, i = schedule[0]
            # Everything still to come has ts >= this one and recv_ts > ts.
            while pending and pending[0][0] <= ts:
                yield pop(pending)[2]
            market, wire = markets[i], wires[i]
            kind = market.step()
            exchange, symbol = market.exchange, market.symbol
            if kind == "ticker":
                (bid, bid_size), (ask, ask_size) = market.touch()
                base_volume, quote_volume = market.volumes()
                recv = wire.recv_ts(ts)
                envelope = {
                    "type": "ticker",
                    "exchange": exchange,
                    "symbol": symbol,
                    "ts": wire.ticker_ts(ts),
                    "recv_ts": recv,
                    "bid": bid,
                    "ask": ask,
                    "bid_size": bid_size,
                    "ask_size": ask_size,
                    "last": market.last_price,
                    "base_volume": round(base_volume, 8),
                    "quote_volume": round(quote_volume, 2),
                }
                push(pending, (recv, next(order), dumps(envelope)))
            else:
                if kind == "trade":
                    for fill in market.fills():
                        recv = wire.recv_ts(ts)
                        trade = {
                            "type": "trade",
                            "exchange": exchange,
                            "symbol": symbol,
                            "ts": ts,
                            "recv_ts": recv,
                            "id": str(fill.id),
                            "price": fill.price,
                            "amount": fill.amount,
                            "side": fill.side,
                        }
                        push(pending, (recv, next(order), dumps(trade)))
                bids, asks = market.book(levels)
                recv = wire.recv_ts(ts)
                book = {
                    "type": "book",
                    "exchange": exchange,
                    "symbol": symbol,
                    "ts": ts,
                    "recv_ts": recv,
                    "seq": market.update_id,
                    "bids": bids,
                    "asks": asks,
                }
                push(pending, (recv, next(order), dumps(book)))
            heapq.heapreplace(schedule, (market.next_ts, i))
