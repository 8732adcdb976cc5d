"""A deliberately naive re-implementation of the definitions of docs/design.md "Feature contracts", for testing only.

It keeps every event and recomputes each row from scratch, sharing no code with
the engine, so agreement between the two is evidence about the definitions, not
about one implementation checking itself.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fluxforge_common.config.state import IbarsConfig, TickImbalanceConfig

Book = tuple[list[tuple[float, float]], list[tuple[float, float]]]


@dataclass
class Update:
    t: int
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]

    @property
    def mid(self) -> float:
        return (self.bids[0][0] + self.asks[0][0]) / 2

    @property
    def spread(self) -> float:
        return self.asks[0][0] - self.bids[0][0]


@dataclass
class Trade:
    t: int
    price: float
    amount: float
    side: str


def ofi_increment(prev: Update, cur: Update, level: int) -> float:
    """Cont-Kukanov-Stoikov increment at `level` (0-based); a missing level is price 0/inf, size 0."""

    def at(levels: list[tuple[float, float]], missing: float) -> tuple[float, float]:
        return levels[level] if level < len(levels) else (missing, 0.0)

    pb, qb = at(cur.bids, 0.0)
    pb0, qb0 = at(prev.bids, 0.0)
    pa, qa = at(cur.asks, math.inf)
    pa0, qa0 = at(prev.asks, math.inf)
    ofi_bid = qb if pb > pb0 else (qb - qb0 if pb == pb0 else -qb0)
    ofi_ask = -qa0 if pa > pa0 else (qa - qa0 if pa == pa0 else qa)
    return ofi_bid - ofi_ask


def applied_order(
    arrivals: list[Update | Trade], interval_ms: int, lateness_ms: int
) -> tuple[list[Update | Trade], list[int]]:
    """(the events in the order they take effect, the arrival indices of the late ones).

    The rule of docs/design.md "Time and emission", replayed literally: an event waits until the
    latest event time seen reaches its own plus the lateness, waiting events take effect sorted by
    (event time, arrival), and an event is late when the grid point at or below (latest event time
    - lateness) lies after it, once any event has taken effect. The end of input releases them all.
    """
    applied: list[Update | Trade] = []
    waiting: list[tuple[int, int, Update | Trade]] = []
    late: list[int] = []
    latest: int | None = None
    for index, event in enumerate(arrivals):
        if applied and latest is not None:
            open_start = (latest - lateness_ms) // interval_ms * interval_ms
            if event.t < open_start:
                late.append(index)
                continue
        latest = event.t if latest is None else max(latest, event.t)
        waiting.append((event.t, index, event))
        due = sorted((w for w in waiting if w[0] <= latest - lateness_ms), key=lambda w: (w[0], w[1]))
        applied += [e for _, _, e in due]
        waiting = [w for w in waiting if w[0] > latest - lateness_ms]
    applied += [e for _, _, e in sorted(waiting, key=lambda w: (w[0], w[1]))]
    return applied, late


def reference_rows(
    events: list[Update | Trade],
    interval_ms: int,
    horizons: list[int],
    bar_durations: list[int],
    regime_s: int,
    ofi_levels: int,
    tight: float,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """HF and bar rows of events in the order they take effect (`applied_order`), flushed at the end.

    That order may step back in event time only inside one grid interval.
    """
    updates = [e for e in events if isinstance(e, Update)]
    trades = [e for e in events if isinstance(e, Trade)]
    increments: list[tuple[int, list[float]]] = [
        (cur.t, [ofi_increment(prev, cur, m) for m in range(ofi_levels)])
        for prev, cur in itertools.pairwise(updates)
    ]
    first = events[0].t
    last = max(e.t for e in events)
    grid = list(
        range(
            first // interval_ms * interval_ms + interval_ms,
            last // interval_ms * interval_ms + interval_ms + 1,
            interval_ms,
        )
    )

    def book_at(t: int) -> Update | None:
        before = [u for u in updates if u.t < t]
        return before[-1] if before else None

    def in_window(t: int, lo: int, hi: int) -> bool:
        return lo <= t < hi

    def rv(lo: int, hi: int) -> float:
        mids = [u.mid for u in updates if in_window(u.t, lo, hi)]
        return math.sqrt(sum(math.log(b / a) ** 2 for a, b in itertools.pairwise(mids)))

    hf: list[dict[str, Any]] = []
    prev_mid = prev_vel = None
    for t in grid:
        book = book_at(t)
        row: dict[str, Any] = {"ts": t}
        mid = book.mid if book else None
        row["mid"] = mid
        for m in range(ofi_levels):
            row[f"ofi_l{m + 1}"] = sum(inc[m] for ti, inc in increments if in_window(ti, t - interval_ms, t))
        row["mlofi"] = sum(row[f"ofi_l{m + 1}"] for m in range(ofi_levels))
        row["update_count"] = sum(1 for u in updates if in_window(u.t, t - interval_ms, t))
        row["trade_count"] = sum(1 for x in trades if in_window(x.t, t - interval_ms, t))
        row["log_return"] = math.log(mid / prev_mid) if mid is not None and prev_mid is not None else None
        vel = (mid - prev_mid) / (interval_ms / 1000) if mid is not None and prev_mid is not None else None
        row["mid_velocity"] = vel
        row["mid_acceleration"] = (
            (vel - prev_vel) / (interval_ms / 1000) if vel is not None and prev_vel is not None else None
        )
        prev_mid, prev_vel = mid, vel
        for h in horizons:
            lo = t - h * 1000
            row[f"rv_{h}s"] = rv(lo, t)
            row[f"ofi_cum_{h}s"] = sum(inc[0] for ti, inc in increments if in_window(ti, lo, t))
            buy = sum(x.amount for x in trades if in_window(x.t, lo, t) and x.side == "buy")
            sell = sum(x.amount for x in trades if in_window(x.t, lo, t) and x.side == "sell")
            row[f"tfi_{h}s"] = (buy - sell) / (buy + sell) if buy + sell > 0 else 0.0
            row[f"trade_volume_{h}s"] = buy + sell
        lo = t - regime_s * 1000
        window = [u for u in updates if in_window(u.t, lo, t)]
        depths = [sum(q for _, q in u.bids) + sum(q for _, q in u.asks) for u in window]
        if depths:
            mean = sum(depths) / len(depths)
            row[f"depth_var_{regime_s}s"] = sum((d - mean) ** 2 for d in depths) / len(depths)
            row[f"tight_spread_frac_{regime_s}s"] = sum(1 for u in window if u.spread / u.mid <= tight) / len(
                window
            )
        else:
            row[f"depth_var_{regime_s}s"] = row[f"tight_spread_frac_{regime_s}s"] = None
        hf.append(row)

    bars: list[dict[str, Any]] = []
    for t in grid:
        for d in bar_durations:
            if t % (d * 1000):
                continue
            lo = t - d * 1000
            inside = [u for u in updates if in_window(u.t, lo, t)]
            traded = [x for x in trades if in_window(x.t, lo, t)]
            bar: dict[str, Any] = {
                "ts": lo,
                "duration_s": d,
                "count": len(inside),
                "trade_count": len(traded),
            }
            if inside:
                mids = [u.mid for u in inside]
                bar |= {"open": mids[0], "high": max(mids), "low": min(mids), "close": mids[-1]}
                bar["mean_spread"] = sum(u.spread for u in inside) / len(inside)
                bar["min_spread"] = min(u.spread for u in inside)
                bar["max_spread"] = max(u.spread for u in inside)
                bar["mean_rel_spread"] = sum(u.spread / u.mid for u in inside) / len(inside)
                bar["mean_imbalance_l1"] = sum(
                    (u.bids[0][1] - u.asks[0][1]) / (u.bids[0][1] + u.asks[0][1]) for u in inside
                ) / len(inside)
            else:
                before = [u for u in updates if u.t < lo]
                close = before[-1].mid if before else None
                bar |= {"open": close, "high": close, "low": close, "close": close}
                bar |= dict.fromkeys(
                    ("mean_spread", "min_spread", "max_spread", "mean_rel_spread", "mean_imbalance_l1")
                )
            bar["sum_ofi"] = sum(inc[0] for ti, inc in increments if in_window(ti, lo, t))
            mids = [u.mid for u in inside]
            bar["realized_var"] = sum(math.log(b / a) ** 2 for a, b in itertools.pairwise(mids))
            volume = sum(x.amount for x in traded)
            bar["trade_volume"] = volume
            bar["vwap"] = sum(x.price * x.amount for x in traded) / volume if traded else None
            bars.append(bar)
    return hf, bars


def reference_ibars(trades: list[Trade], cfg: IbarsConfig) -> list[dict[str, Any]]:
    """Information-driven bars of one symbol's applied trades, each bar found from scratch.

    A bar is the shortest run of trades after the previous bar of its series whose measure reaches
    the series' threshold; a tick-imbalance bar's threshold is recomputed from the whole history of
    bar lengths and trade signs before it (docs/features.md "ibars/"). Rows come in the order of the
    trade that closes them, series in config order.
    """
    closed: list[tuple[int, int, dict[str, Any]]] = []
    series: list[tuple[str, float]] = [("tick", float(n)) for n in cfg.tick]
    series += [("volume", v) for v in cfg.volume] + [("dollar", d) for d in cfg.dollar]
    measures: dict[str, Callable[[list[Trade]], float]] = {
        "tick": len,
        "volume": lambda run: math.fsum(t.amount for t in run),
        "dollar": lambda run: math.fsum(t.price * t.amount for t in run),
    }
    for order, (kind, threshold) in enumerate(series):
        start = 0
        for end in range(len(trades)):
            run = trades[start : end + 1]
            if measures[kind](run) >= threshold:
                closed.append((end, order, _ibar_row(run, kind, threshold, None, None)))
                start = end + 1
    tib = cfg.tick_imbalance
    if tib is not None:
        lengths: list[int] = []
        start = 0
        for end in range(len(trades)):
            run = trades[start : end + 1]
            if not lengths:
                if len(run) >= tib.expected_ticks_init:
                    closed.append(
                        (
                            end,
                            len(series),
                            _ibar_row(run, "tick_imbalance", None, float(tib.expected_ticks_init), None),
                        )
                    )
                    lengths.append(len(run))
                    start = end + 1
                continue
            expected_ticks = _expected_ticks(lengths, tib)
            expected_imbalance = _sign_average(trades[:start], lengths[0], tib)
            threshold = expected_ticks * abs(expected_imbalance)
            if abs(sum(_sign(t) for t in run)) >= threshold:
                row = _ibar_row(run, "tick_imbalance", threshold, expected_ticks, expected_imbalance)
                closed.append((end, len(series), row))
                lengths.append(len(run))
                start = end + 1
    return [row for _, _, row in sorted(closed, key=lambda c: (c[0], c[1]))]


def _sign(trade: Trade) -> int:
    return 1 if trade.side == "buy" else -1


def _expected_ticks(lengths: list[int], cfg: TickImbalanceConfig) -> float:
    """E0[T] after the bars of `lengths`: the clamped EWMA from `expected_ticks_init`."""
    alpha = 2 / (cfg.bars_span + 1)
    value = float(cfg.expected_ticks_init)
    for n in lengths:
        value = min(max(value + alpha * (n - value), cfg.expected_ticks_min), cfg.expected_ticks_max)
    return value


def _sign_average(history: list[Trade], first_trades: int, cfg: TickImbalanceConfig) -> float:
    """E0[b] after the trades of `history`: the mean sign of the first bar, then the EWMA per trade."""
    alpha = 2 / (cfg.ticks_span + 1)
    signs = [_sign(t) for t in history]
    value = sum(signs[:first_trades]) / first_trades
    for sign in signs[first_trades:]:
        value = value + alpha * (sign - value)
    return value


def _ibar_row(
    run: list[Trade],
    kind: str,
    threshold: float | None,
    expected_ticks: float | None,
    expected_imbalance: float | None,
) -> dict[str, Any]:
    prices = [t.price for t in run]
    volume = math.fsum(t.amount for t in run)  # the exact sum, rounded once
    dollar = math.fsum(t.price * t.amount for t in run)
    return {
        "exchange": "ex",
        "symbol": "BTC/USDT",
        "ts": run[0].t,
        "end_ts": run[-1].t,
        "kind": kind,
        "threshold": threshold,
        "expected_ticks": expected_ticks,
        "expected_imbalance": expected_imbalance,
        "open": prices[0],
        "high": max(prices),
        "low": min(prices),
        "close": prices[-1],
        "tick_count": len(run),
        "volume": volume,
        "dollar_value": dollar,
        "buy_volume": sum(t.amount for t in run if t.side == "buy"),
        "sell_volume": sum(t.amount for t in run if t.side == "sell"),
        "imbalance": sum(_sign(t) for t in run),
        "vwap": dollar / volume,
    }
