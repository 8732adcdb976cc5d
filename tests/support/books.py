"""Book updates folded into `IntervalFlows` the way the engine folds them: through a `SymbolCore`."""

from __future__ import annotations

from fluxforge_common.features.output import EngineOutput
from fluxforge_common.messages.envelopes import BookTick, TickerTick, TradeTick
from fluxforge_native import IntervalFlows, Levels, SymbolCore

T0 = 1_765_497_600_000


class BookFolder:
    """Folds books into `flows`, each after the one before it, all in one grid interval."""

    def __init__(self, flows: IntervalFlows, tight_spread: float, max_levels: int = 10) -> None:
        self.core = SymbolCore(
            "ex", "BTC/USDT", BookTick, TradeTick, TickerTick, 1_000, 0, max_levels, tight_spread, flows
        )
        self.out = EngineOutput()

    def fold(self, bids: Levels, asks: Levels) -> float:
        """Fold in one book update; its mid."""
        tick = BookTick("ex", "BTC/USDT", T0, T0, bids, asks)
        reason = self.core.process(tick, T0, self.out, self)
        assert reason is None, reason
        return self.core.last_mid
