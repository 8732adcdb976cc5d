"""SymbolMarket: one venue's limit order book for one symbol, and the events that move it.

The market knows nothing of envelopes, so another front end (a Binance-style
websocket emulator with diff-depth update ids) can serve the very same market:
each step exposes the level changes it made, its fills, and the true top of book.

Dynamics, in tick units around the asset's shared fair price (see `fair.py`):
limit orders arrive around fair (more at the touch), cancels hit levels near
the touch and mostly the stale side (the one fair has moved through), market
orders walk the book and sweep stale quotes up to fair, and the far end is
refilled or trimmed so a side never empties. A tight/wide regime sets how
close to fair new quotes sit, i.e. the spread.
"""

from __future__ import annotations

import math
import random
from bisect import insort
from typing import Literal, NamedTuple

from fluxforge_common.messages.envelopes import Level
from fluxforge_common.simulator.clock import EventClock
from fluxforge_common.simulator.config import SimulatorConfig
from fluxforge_common.simulator.fair import FairValue
from fluxforge_common.simulator.specs import decimal_units, symbol_spec

StepKind = Literal["book", "trade", "ticker"]

MAX_WALK = 10  # levels one market order may take: its implicit limit price
DAY_MS = 86_400_000
_PARETO_ALPHA = 1.5  # market order sizes are heavy-tailed; this Pareto has mean 3
# Where orders arrive and leave: most near the touch, the rest anywhere in the book, so
# the deep book turns over too and keeps its shape instead of thinning out.
_NEAR_SHARE = 0.7
_NEAR_OFFSET_GAPS = 1.5  # mean distance of near quotes behind fair, in level gaps
_FAR_OFFSET_GAPS = 75.0  # far quotes land uniformly up to this far behind fair: the deep book
_MAX_TRADE_MEANS = 50  # largest market order, in mean order sizes: heavy tail, bounded
_NEAR_CANCEL_RANK = 2.0  # mean level index of near-touch cancels
# Prior for the mean number of levels a market order fills, before any were seen.
_PRIOR_ORDERS, _PRIOR_FILLS = 10, 15
# Spread regimes: (half-spread of new quotes in level gaps, mean duration in seconds).
_TIGHT = (0.0, 90.0)
_WIDE = (2.0, 25.0)


class LevelChange(NamedTuple):
    """A price level's new total size after a step; size 0 means the level was removed."""

    side: Literal["bid", "ask"]
    price: float
    size: float


class Fill(NamedTuple):
    """One level taken by a market order (one trade per level filled)."""

    id: int
    price: float
    amount: float
    side: Literal["buy", "sell"]  # the aggressor: a buy lifts asks, a sell hits bids


class _Side:
    """One side of the book, keyed by `sign * price index` so the best level is the smallest key.

    Bids use sign -1 and asks +1, which lets one piece of code handle both sides.
    """

    __slots__ = ("keys", "levels", "lots", "name", "sign")

    def __init__(self, name: Literal["bid", "ask"], sign: int) -> None:
        self.name: Literal["bid", "ask"] = name
        self.sign = sign
        self.keys: list[int] = []  # ascending: best first
        self.lots: dict[int, int] = {}  # size in lots
        self.levels: dict[int, Level] = {}  # (price, size) as published, cached per level


class SymbolMarket:
    """The full book of one symbol on one exchange, stepped one event at a time.

    `next_ts` is the time of the coming event; `step()` applies it, sets `ts`,
    and returns what it was: "book" (limit order or cancel), "trade" (a market
    order: fills plus the book change) or "ticker" (a ticker snapshot is due;
    the book is unchanged). `update_id` grows by one per book-changing step.
    """

    def __init__(self, config: SimulatorConfig, exchange: str, symbol: str, fair: FairValue) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.spec = spec = symbol_spec(exchange, symbol)  # tick and lot: what an exchange info reply needs
        rng = self._rng = random.Random(f"{config.seed}:market:{exchange}:{symbol}")
        self._fair = fair
        self._tick_units, self._tick_scale = decimal_units(spec.tick)
        self._lot_units, self._lot_scale = decimal_units(spec.lot)
        tick = self._tick_units / self._tick_scale
        lot = self._lot_units / self._lot_scale
        premium = 1.0 + spec.basis_bps * 1e-4
        price = spec.asset.price * premium
        self._fair_ticks = premium / tick  # asset fair price -> this book's fair, in ticks
        self._gap = max(1.0, price * spec.gap_bps * 1e-4 / tick)
        self._near_rate = 1.0 / (_NEAR_OFFSET_GAPS * self._gap)
        self._far_offset = _FAR_OFFSET_GAPS * self._gap
        self._deep_gap_rate = 1.0 / (1.5 * self._gap)
        self._stale_scale = 2.0 * self._gap + 1.0  # ticks past fair at which a quote is surely stale
        self._level_rate = price * lot / spec.asset.level_notional
        self._deep_level_rate = self._level_rate / 2.0
        self._trade_lots = spec.asset.trade_notional / price / lot / 3.0
        self._depth = config.depth
        self._depth_max = config.depth + config.depth // 5
        # Per step: a ticker with q_ticker, a market order filling L levels with q_market,
        # else a book event. Trades are then q_market * L per (1 + q_market * L)
        # envelopes, so q_market = s / ((1 - s) * L), with L learnt as the run goes.
        self._q_ticker = config.ticker_share / (1.0 - config.trade_share)
        self._trades_per_step = config.trade_share / (1.0 - config.trade_share)
        self._orders = _PRIOR_ORDERS
        self._fill_levels = _PRIOR_FILLS
        self._clock = EventClock(
            rng, config.start_ms, config.mean_events_per_second_per_symbol * (1.0 - config.trade_share)
        )

        self.update_id = rng.randrange(1_000_000_000, 2_000_000_000)
        self._next_trade_id = rng.randrange(100_000_000, 200_000_000)
        self.ts = config.start_ms
        self.taker: Literal["buy", "sell"] = "buy"
        self._changes: list[tuple[_Side, int, int]] = []
        self._fills: list[tuple[int, int, int]] = []  # (key on the maker side, lots, trade id)
        self._wide = False
        self._half_spread = _TIGHT[0]
        self._spread_end_ms = self.ts + self._regime_ms(_TIGHT[1])

        self._bid = _Side("bid", -1)
        self._ask = _Side("ask", 1)
        touch = math.floor(fair.at(self.ts) * self._fair_ticks)
        self._set(self._bid, -touch, self._level_lots())
        self._set(self._ask, touch + 1, self._level_lots())
        self._replenish(self._bid)
        self._replenish(self._ask)
        self._changes = []
        self.last_price = self._bid.levels[self._bid.keys[0]][0]
        self._volume_ts = self.ts
        self._quote_volume = spec.asset.quote_volume_24h
        self._base_volume = self._quote_volume / price
        self.next_ts = self._clock.next_ms()

    # -- public views ---------------------------------------------------------

    def book(self, n: int) -> tuple[list[Level], list[Level]]:
        """The true top `n` levels per side: bids best (highest) first, asks best (lowest) first."""
        bid, ask = self._bid, self._ask
        return [bid.levels[k] for k in bid.keys[:n]], [ask.levels[k] for k in ask.keys[:n]]

    def touch(self) -> tuple[Level, Level]:
        """Best bid and best ask as (price, size)."""
        return self._bid.levels[self._bid.keys[0]], self._ask.levels[self._ask.keys[0]]

    def level_changes(self) -> list[LevelChange]:
        """Every level the last step changed, in order (a level may appear twice)."""
        return [
            LevelChange(side.name, self._price(side, key), self._amount(lots))
            for side, key, lots in self._changes
        ]

    def fills(self) -> list[Fill]:
        """Trades of the last step, one per level its market order took, best price first."""
        side = self._ask if self.taker == "buy" else self._bid
        return [
            Fill(tid, self._price(side, key), self._amount(lots), self.taker)
            for key, lots, tid in self._fills
        ]

    def volumes(self) -> tuple[float, float]:
        """Rolling 24h (exponentially decayed) base and quote volume as of `ts`."""
        decay = math.exp((self._volume_ts - self.ts) / DAY_MS)
        return self._base_volume * decay, self._quote_volume * decay

    # -- stepping -------------------------------------------------------------

    def step(self) -> StepKind:
        """Apply the event at `next_ts` and draw the time of the one after it."""
        ts = self.ts = self.next_ts
        self._changes = []
        self._fills = []
        if ts >= self._spread_end_ms:
            self._switch_spread()
        rng = self._rng
        u = rng.random()
        kind: StepKind
        if u < self._q_ticker:
            kind = "ticker"
        else:
            bid, ask = self._bid, self._ask
            fair = self._fair.at(ts) * self._fair_ticks
            scale = self._stale_scale
            best_bid, best_ask = -bid.keys[0], ask.keys[0]
            # Staleness in [-1, 1]: > 0 when fair has moved through the best ask (asks too
            # cheap: buyers take them, their makers cancel), < 0 through the best bid.
            stale = (max(0.0, fair - best_ask) - max(0.0, best_bid - fair)) / scale
            stale = -1.0 if stale < -1.0 else 1.0 if stale > 1.0 else stale
            q_market = self._trades_per_step * self._orders / self._fill_levels
            if u < self._q_ticker + q_market:
                self._market_order(ask if rng.random() < 0.5 + 0.45 * stale else bid, fair)
                kind = "trade"
            else:
                v = rng.random()
                if v < 0.5:
                    # Makers quote where the book is thin relative to fair: below mid, bids.
                    lean = (2.0 * fair - best_bid - best_ask) / (2.0 * scale)
                    side = bid if rng.random() < 0.5 + 0.2 * max(-1.0, min(1.0, lean)) else ask
                    self._add(side, ask if side is bid else bid, fair)
                else:
                    side = ask if rng.random() < 0.5 + 0.45 * stale else bid
                    self._cancel(side, v >= 0.85)
                    if v >= 0.85:  # requote: the whole order moves back towards fair
                        self._add(side, ask if side is bid else bid, fair)
                kind = "book"
            self._replenish(bid)
            self._replenish(ask)
            self.update_id += 1
        self.next_ts = self._clock.next_ms()
        return kind

    def _add(self, side: _Side, other: _Side, fair: float) -> None:
        rng = self._rng
        if rng.random() < _NEAR_SHARE:
            offset = rng.expovariate(self._near_rate)
        else:
            offset = rng.random() * self._far_offset
        key = math.ceil(side.sign * fair + self._half_spread + offset)
        lowest = 1 - other.keys[0]  # one tick short of the other side's best: never locked or crossed
        if key < lowest:
            key = lowest
        self._set(side, key, side.lots.get(key, 0) + self._level_lots())

    def _cancel(self, side: _Side, whole: bool) -> None:
        rng = self._rng
        n = len(side.keys)
        if rng.random() < _NEAR_SHARE:
            rank = min(int(rng.expovariate(1.0 / _NEAR_CANCEL_RANK)), n - 1)
        else:
            rank = int(rng.random() * n)
        key = side.keys[rank]
        lots = side.lots[key]
        if whole or lots == 1 or rng.random() < 0.45:
            self._remove(side, rank)
        else:
            self._set(side, key, 1 + int((lots - 1) * rng.random()))

    def _market_order(self, side: _Side, fair: float) -> None:
        """Take liquidity from `side` (asks for a buy) for at most `MAX_WALK` levels."""
        keys, lots_by_key = side.keys, side.lots
        want = 1 + int(self._trade_lots * min(self._rng.paretovariate(_PARETO_ALPHA), 3.0 * _MAX_TRADE_MEANS))
        stale = 0  # quotes on the wrong side of fair: arbitrageurs take them all
        limit = side.sign * fair
        for key in keys[:MAX_WALK]:
            if key >= limit:
                break
            stale += lots_by_key[key]
        want = max(want, stale)
        self.taker = "buy" if side is self._ask else "sell"
        fills = self._fills
        tid = self._next_trade_id
        for _ in range(MAX_WALK):
            key = keys[0]
            have = lots_by_key[key]
            tid += 1
            if want < have:
                self._set(side, key, have - want)
                fills.append((key, want, tid))
                break
            self._remove(side, 0)
            fills.append((key, have, tid))
            want -= have
            if not want:
                break
        self._next_trade_id = tid
        self._orders += 1
        self._fill_levels += len(fills)
        decay = math.exp((self._volume_ts - self.ts) / DAY_MS)
        base = quote = 0.0
        for key, lots, _ in fills:
            amount = self._amount(lots)
            base += amount
            quote += amount * self._price(side, key)
        self._base_volume = self._base_volume * decay + base
        self._quote_volume = self._quote_volume * decay + quote
        self._volume_ts = self.ts
        self.last_price = self._price(side, fills[-1][0])

    def _replenish(self, side: _Side) -> None:
        """Refill the far end from the deep book, or trim it, to keep the depth in bounds."""
        keys = side.keys
        n = len(keys)
        if n < self._depth:
            rng = self._rng
            key = keys[-1]
            for _ in range(self._depth - n):
                key += 1 + int(rng.expovariate(self._deep_gap_rate))
                self._set(side, key, 1 + int(rng.expovariate(self._deep_level_rate)))
        elif n > self._depth_max:
            for _ in range(n - self._depth_max):
                self._remove(side, -1)

    def _switch_spread(self) -> None:
        self._wide = not self._wide
        gaps, mean_s = _WIDE if self._wide else _TIGHT
        self._half_spread = gaps * self._gap
        self._spread_end_ms = self.ts + self._regime_ms(mean_s)

    # -- book primitives --------------------------------------------------------

    def _level_lots(self) -> int:
        return 1 + int(self._rng.expovariate(self._level_rate))

    def _regime_ms(self, mean_s: float) -> int:
        return int(self._rng.expovariate(1.0 / mean_s) * 1000.0)

    def _price(self, side: _Side, key: int) -> float:
        return side.sign * key * self._tick_units / self._tick_scale

    def _amount(self, lots: int) -> float:
        return lots * self._lot_units / self._lot_scale

    def _set(self, side: _Side, key: int, lots: int) -> None:
        if key not in side.lots:
            insort(side.keys, key)
        side.lots[key] = lots
        side.levels[key] = (self._price(side, key), self._amount(lots))
        self._changes.append((side, key, lots))

    def _remove(self, side: _Side, rank: int) -> None:
        key = side.keys.pop(rank)
        del side.lots[key]
        del side.levels[key]
        self._changes.append((side, key, 0))
