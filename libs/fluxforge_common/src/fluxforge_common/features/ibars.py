"""Information-driven bars (López de Prado, *Advances in Financial Machine Learning*, ch. 2.3).

A bar is a run of one symbol's trades, in the order the engine applies them,
that closes after the trade bringing its measure to the threshold: the trade
count (tick bars), the traded amount (volume bars), the traded value (dollar
bars), or the absolute signed trade count |sum b_t| (tick-imbalance bars,
whose threshold E0[T] * |E0[b]| follows two moving averages). The rules and
every column are in docs/features.md "ibars/".
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

from fluxforge_common.config.state import IbarsConfig, TickImbalanceConfig

TICK: Final = "tick"
VOLUME: Final = "volume"
DOLLAR: Final = "dollar"
TICK_IMBALANCE: Final = "tick_imbalance"


# The running sums' rounding errors (Neumaier), so that a bar closes at the trade whose amounts
# reach the threshold exactly: eight trades of 0.1 make a volume bar of 0.8, where the plain
# sum is 0.7999999999999999. Kept last in the state; a state from before them loads with 0.
_ROUNDING_ERRORS: Final = ("volume_error", "dollar_error")
_INFORMATION_BAR_SLOTS: Final = (
    "buy_volume",
    "close",
    "dollar",
    "dollar_error",
    "end_ms",
    "high",
    "imbalance",
    "kind",
    "low",
    "n",
    "open",
    "sell_volume",
    "start_ms",
    "threshold",
    "volume",
    "volume_error",
)


class InformationBar:
    """The open bar of one kind and threshold."""

    __slots__ = _INFORMATION_BAR_SLOTS

    _STATE: ClassVar[tuple[str, ...]] = tuple(
        sorted(set(_INFORMATION_BAR_SLOTS) - {"kind", "threshold", *_ROUNDING_ERRORS})
    )

    def __init__(self, kind: str, threshold: float) -> None:
        self.kind = kind
        self.threshold = threshold
        self.reset()

    def reset(self) -> None:
        self.n = self.imbalance = self.start_ms = self.end_ms = 0
        self.open = self.high = self.low = self.close = 0.0
        self.volume = self.dollar = self.buy_volume = self.sell_volume = 0.0
        self.volume_error = self.dollar_error = 0.0

    def add(self, event_ms: int, price: float, amount: float, sign: int) -> bool:
        """Take one trade; True when it closes the bar."""
        if self.n:
            if price > self.high:
                self.high = price
            elif price < self.low:
                self.low = price
        else:
            self.start_ms = event_ms
            self.open = self.high = self.low = price
        self.close = price
        self.end_ms = event_ms
        self.n += 1
        self.imbalance += sign
        volume = self.volume
        self.volume = total = volume + amount
        self.volume_error += (volume - total) + amount if volume >= amount else (amount - total) + volume
        dollar, value = self.dollar, price * amount
        self.dollar = total = dollar + value
        self.dollar_error += (dollar - total) + value if dollar >= value else (value - total) + dollar
        if sign > 0:
            self.buy_volume += amount
        else:
            self.sell_volume += amount
        return self.reached()

    def next_bar(self) -> None:
        """After the bar's row was taken: open the next bar."""
        self.reset()

    def reached(self) -> bool:
        kind = self.kind
        if kind == TICK:
            return self.n >= self.threshold
        if kind == VOLUME:
            return self.volume + self.volume_error >= self.threshold
        return self.dollar + self.dollar_error >= self.threshold

    def row(self, exchange: str, symbol: str) -> dict[str, Any]:
        volume, dollar = self.volume + self.volume_error, self.dollar + self.dollar_error
        return {
            "exchange": exchange,
            "symbol": symbol,
            "ts": self.start_ms,
            "end_ts": self.end_ms,
            "kind": self.kind,
            "threshold": self.threshold,
            "expected_ticks": None,
            "expected_imbalance": None,
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "tick_count": self.n,
            "volume": volume,
            "dollar_value": dollar,
            "buy_volume": self.buy_volume,
            "sell_volume": self.sell_volume,
            "imbalance": self.imbalance,
            "vwap": dollar / volume,
        }

    def to_state(self) -> list[Any]:
        return [getattr(self, name) for name in (*self._STATE, *_ROUNDING_ERRORS)]

    def load_state(self, values: list[Any]) -> None:
        names = self._STATE if len(values) == len(self._STATE) else (*self._STATE, *_ROUNDING_ERRORS)
        for name, value in zip(names, values, strict=True):
            setattr(self, name, value)


class TickImbalanceBar(InformationBar):
    """A tick-imbalance bar: closes once |sum b_t| >= E0[T] * |E0[b]|, both fixed when it opens.

    Until a symbol's first bar closes there is no E0[b]: that bar closes after
    `expected_ticks_init` trades and seeds the trade-sign average with their
    mean sign. From then on every trade moves that average (EWMA over trades),
    every closed bar moves E0[T] (EWMA over bars of their trade counts, clamped),
    and each new bar takes both as they are when it opens.
    """

    __slots__ = (
        "alpha_bars",
        "alpha_ticks",
        "expected_imbalance",
        "expected_ticks",
        "sign_average",
        "ticks_max",
        "ticks_min",
    )

    _STATE: ClassVar[tuple[str, ...]] = (
        *InformationBar._STATE,
        "threshold",
        "expected_ticks",
        "expected_imbalance",
        "sign_average",
    )

    def __init__(self, cfg: TickImbalanceConfig) -> None:
        self.alpha_bars = 2 / (cfg.bars_span + 1)
        self.alpha_ticks = 2 / (cfg.ticks_span + 1)
        self.ticks_min, self.ticks_max = cfg.expected_ticks_min, cfg.expected_ticks_max
        self.expected_ticks = float(cfg.expected_ticks_init)  # E0[T] of the open bar
        self.expected_imbalance: float | None = None  # E0[b] of the open bar; None during the first bar
        self.sign_average: float | None = None  # the EWMA of trade signs, up to the last trade
        super().__init__(TICK_IMBALANCE, self.expected_ticks)

    def add(self, event_ms: int, price: float, amount: float, sign: int) -> bool:
        super().add(event_ms, price, amount, sign)
        average = self.sign_average
        if average is None:
            return self.n >= self.threshold
        self.sign_average = average + self.alpha_ticks * (sign - average)
        return abs(self.imbalance) >= self.threshold

    def row(self, exchange: str, symbol: str) -> dict[str, Any]:
        row = super().row(exchange, symbol)
        first = self.expected_imbalance is None
        row["threshold"] = None if first else self.threshold
        row["expected_ticks"] = self.expected_ticks
        row["expected_imbalance"] = self.expected_imbalance
        return row

    def next_bar(self) -> None:
        average = self.sign_average
        if average is None:
            average = self.sign_average = self.imbalance / self.n
        ticks = self.expected_ticks + self.alpha_bars * (self.n - self.expected_ticks)
        self.expected_ticks = min(max(ticks, self.ticks_min), self.ticks_max)
        self.expected_imbalance = average
        self.threshold = self.expected_ticks * abs(average)
        self.reset()


def information_bars(cfg: IbarsConfig) -> list[InformationBar]:
    """A symbol's open bars, in the order their rows are emitted when one trade closes several."""
    bars = [InformationBar(TICK, float(n)) for n in cfg.tick]
    bars += [InformationBar(VOLUME, v) for v in cfg.volume]
    bars += [InformationBar(DOLLAR, d) for d in cfg.dollar]
    if cfg.tick_imbalance is not None:
        bars.append(TickImbalanceBar(cfg.tick_imbalance))
    return bars
