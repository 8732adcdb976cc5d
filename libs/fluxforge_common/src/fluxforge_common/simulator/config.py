"""SimulatorConfig: what the simulated market trades, from which seed, and how busy it is."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fluxforge_common.messages.decoding import MAX_TS_MS, MIN_TS_MS

# Book levels the simulator keeps per side beyond what it publishes, so trades
# and cancels near the touch never empty a side between refills.
MIN_INTERNAL_DEPTH = 50


class SimulatorConfig(BaseModel):
    """Parameters of the simulated market; the same config always yields the same bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(default=7, description="Seed of every random draw; same seed, same stream.")
    exchanges: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "binanceus": ["BTC/USDT", "ETH/USDT", "SOL/USDT"],
            "kraken": ["BTC/USD", "ETH/USD"],
        },
        description="Exchange name -> ccxt unified symbols simulated on it.",
    )
    start_ms: int = Field(
        default=1_765_497_600_000,
        ge=MIN_TS_MS,
        lt=MAX_TS_MS,
        description="Event time of the simulation's start, ms since the epoch (2025-12-12T00:00:00Z).",
    )
    levels: int = Field(default=10, ge=1, le=500, description="Levels published per side in book envelopes.")
    trade_share: float = Field(
        default=0.15, ge=0, lt=0.5, description="Fraction of envelopes that are trades."
    )
    ticker_share: float = Field(
        default=0.05, ge=0, lt=1, description="Fraction of envelopes that are tickers."
    )
    mean_events_per_second_per_symbol: float = Field(
        default=20.0, gt=0, le=100_000, description="Long-run envelopes per second of event time, per symbol."
    )

    @field_validator("exchanges")
    @classmethod
    def _non_empty_unique(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        if not value:
            raise ValueError("must name at least one exchange")
        for exchange, symbols in value.items():
            if not exchange or not symbols:
                raise ValueError(f"exchange {exchange!r} needs a name and at least one symbol")
            if len(set(symbols)) != len(symbols):
                raise ValueError(f"exchange {exchange!r} lists a symbol twice: {symbols}")
            for symbol in symbols:
                if "/" not in symbol or not all(symbol.split("/", 1)):
                    raise ValueError(f"{symbol!r} is not a ccxt unified symbol like 'BTC/USDT'")
        return value

    @model_validator(mode="after")
    def _shares_reachable(self) -> SimulatorConfig:
        # Every market order fills at least one level, so with trade share s the other
        # envelopes are at most a (1 - s) / s multiple of trades; tickers must fit in them.
        if 2 * self.trade_share + self.ticker_share > 1:
            raise ValueError(
                f"trade_share={self.trade_share} and ticker_share={self.ticker_share} are not reachable: "
                "need 2 * trade_share + ticker_share <= 1"
            )
        return self

    @property
    def depth(self) -> int:
        """Levels kept per side internally: published levels plus a reserve to refill from."""
        return max(MIN_INTERNAL_DEPTH, 2 * self.levels)
