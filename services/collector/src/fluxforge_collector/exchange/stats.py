"""What an exchange source received and went through: its closing log line and its metrics."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class WatcherRecovery:
    """One watcher's failure and how long until it delivered again."""

    channel: str
    symbols: str
    error: str
    seconds: float
    at: float  # time.monotonic() of the delivery that ended it


@dataclass
class ExchangeStats:
    """What an exchange source received and went through."""

    books: int = 0
    trades: int = 0
    trades_parsed: Counter[str] = field(
        default_factory=Counter
    )  # symbol -> trades ccxt parsed and handed over
    trades_published: Counter[str] = field(
        default_factory=Counter
    )  # symbol -> trade envelopes made (not dupes)
    tickers: int = 0
    snapshots: Counter[str] = field(default_factory=Counter)  # symbol -> REST book snapshots fetched
    resyncs: Counter[str] = field(default_factory=Counter)  # symbol -> snapshots after the first (resyncs)
    gaps: Counter[str] = field(default_factory=Counter)  # symbol -> sequence gaps ccxt reported to a watcher
    reconnects: int = 0  # watch errors that made a watcher reconnect (disconnects, timeouts, stalls)
    stalls: int = 0  # connections failed by the watchdog
    bad_frames: int = 0  # frames ccxt could not decode or handle
    rate_limited: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # exception class -> count
    splits: int = 0  # multi-symbol watches split into single-symbol ones
    failed_symbols: list[str] = field(default_factory=list)  # configured but not on the exchange
    trades_backfilled: Counter[str] = field(default_factory=Counter)  # symbol -> fetched over REST, published
    trades_unrecoverable: Counter[str] = field(
        default_factory=Counter
    )  # symbol -> ids skipped in what was published (neither received nor fetched)
    duplicate_trades: int = 0
    # symbol -> latest book event time minus the trade's, at each live trade's receipt (ms).
    channel_skew_ms: dict[str, int] = field(default_factory=dict)
    channel_skew_max_ms: dict[str, int] = field(default_factory=dict)  # symbol -> the largest |skew| seen
    books_conflated: int = 0  # book updates left out while the queue was full (a later state was published)
    recoveries: list[WatcherRecovery] = field(default_factory=list)

    @property
    def trade_id_gaps(self) -> int:
        """Trade ids skipped in what was published, all symbols (ids that count up by one)."""
        return sum(self.trades_unrecoverable.values())

    def record_skew(self, symbol: str, book_ts: int, trade_ts: int) -> None:
        """How far the symbol's book channel is ahead of its trade channel as a trade arrives."""
        skew = book_ts - trade_ts
        self.channel_skew_ms[symbol] = skew
        if abs(skew) > self.channel_skew_max_ms.get(symbol, -1):
            self.channel_skew_max_ms[symbol] = abs(skew)

    def count_error(self, exc: BaseException) -> str:
        """Count an error by its class; returns the class name."""
        name = type(exc).__name__
        self.errors[name] += 1
        return name

    def count_snapshot(self, symbol: str) -> None:
        """Count a book snapshot: after a symbol's first, each one is a resync."""
        self.snapshots[symbol] += 1
        if self.snapshots[symbol] > 1:
            self.resyncs[symbol] += 1

    def line(self) -> str:
        return (
            f"books {self.books:,}, trades {self.trades:,}, tickers {self.tickers:,}; "
            f"resyncs {sum(self.resyncs.values())}, reconnects {self.reconnects}, stalls {self.stalls}, "
            f"bad frames {self.bad_frames}, rate-limited {self.rate_limited}, "
            f"books conflated {self.books_conflated:,}, trades backfilled "
            f"{sum(self.trades_backfilled.values()):,}, unrecoverable {self.trade_id_gaps:,}"
        )
