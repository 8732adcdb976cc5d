"""StateConfig: the feature engine's parameters and their defaults.

The engine aggregates flows per grid interval, so every window (horizons, bars,
the regime window) must be a whole number of `hf_emit_interval`s; checking that
at start turns a silent approximation into a clear error.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PositiveSeconds = Annotated[int, Field(ge=1, le=86_400)]
PositiveAmount = Annotated[float, Field(gt=0, le=1e18)]


def fmt_window(seconds: float) -> str:
    """`5` -> `5s`: window suffixes of column names."""
    return f"{seconds:g}s"


def fmt_bps(bps: float) -> str:
    """`25` -> `25bps`: depth band suffixes of column names."""
    return f"{bps:g}bps"


def _sorted_unique(value: tuple[float, ...]) -> tuple[float, ...]:
    """A list of sizes as one canonical tuple: the same sizes, however given, make the same config (and fingerprint)."""
    if len(set(value)) != len(value):
        raise ValueError(f"values must be unique, got {value}")
    return tuple(sorted(value))


class TickImbalanceConfig(BaseModel):
    """Tick-imbalance bars with López de Prado's expected-imbalance threshold (AFML ch. 2.3.2.1).

    The rules (initialisation, the two moving averages, the clamp) are in docs/features.md "ibars/".
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    expected_ticks_init: int = Field(
        default=100,
        ge=1,
        le=10_000_000,
        description="E0[T] before the first bar: a symbol's first bar holds this many trades and seeds the "
        "expected imbalance with their mean sign.",
    )
    expected_ticks_min: int = Field(
        default=10, ge=1, le=10_000_000, description="Lower clamp of E0[T] (keeps the bars from collapsing)."
    )
    expected_ticks_max: int = Field(default=10_000, ge=1, le=10_000_000, description="Upper clamp of E0[T].")
    bars_span: float = Field(
        default=20.0,
        ge=1,
        le=1e6,
        description="EWMA span, in bars, of E0[T] (weight 2 / (span + 1) on each new bar's trade count).",
    )
    ticks_span: float = Field(
        default=1000.0,
        ge=1,
        le=1e9,
        description="EWMA span, in trades, of the expected imbalance E0[2P(b=1) - 1] (weight 2 / (span + 1) "
        "on each trade's sign).",
    )

    @model_validator(mode="after")
    def _clamp_holds_the_start(self) -> TickImbalanceConfig:
        if not self.expected_ticks_min <= self.expected_ticks_init <= self.expected_ticks_max:
            raise ValueError(
                f"expected_ticks_min ({self.expected_ticks_min}) <= expected_ticks_init "
                f"({self.expected_ticks_init}) <= expected_ticks_max ({self.expected_ticks_max}) must hold"
            )
        return self


class IbarsConfig(BaseModel):
    """Information-driven bars (the `ibars` table); off until a kind is given."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tick: tuple[Annotated[int, Field(ge=1, le=1_000_000_000)], ...] = Field(
        default=(), description="Tick bars: trades per bar, one bar series per value."
    )
    volume: tuple[PositiveAmount, ...] = Field(
        default=(), description="Volume bars: traded base amount per bar, one series per value."
    )
    dollar: tuple[PositiveAmount, ...] = Field(
        default=(),
        description="Dollar bars: traded quote value (price * amount) per bar, one series per value.",
    )
    tick_imbalance: TickImbalanceConfig | None = Field(
        default=None, description="Tick-imbalance bars (null: none); {} takes the defaults."
    )

    @field_validator("tick", "volume", "dollar")
    @classmethod
    def _sorted_unique(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        return _sorted_unique(value)

    @property
    def enabled(self) -> bool:
        return bool(self.tick or self.volume or self.dollar or self.tick_imbalance is not None)


class StateConfig(BaseModel):
    """Feature-engine parameters (the `features:` section of the config).

    Frozen and tuple-valued so it is hashable: per-config constants are cached by it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    horizons: tuple[PositiveSeconds, ...] = Field(
        default=(1, 5, 30, 60),
        description="Rolling window sizes in seconds (rv, ofi_cum, tfi, trade_volume).",
    )
    bar_durations: tuple[PositiveSeconds, ...] = Field(
        default=(1, 5, 30, 60), description="Bar durations in seconds; all go to the one bars table."
    )
    hf_emit_interval: float = Field(
        default=1.0, ge=0.01, le=3600.0, description="HF grid spacing in seconds (whole milliseconds)."
    )
    max_levels: int = Field(default=10, ge=1, le=200, description="Order-book levels kept per side.")
    ofi_levels: int = Field(
        default=5, ge=1, le=200, description="Levels for multi-level OFI (<= max_levels)."
    )
    bands_bps: tuple[Annotated[float, Field(gt=0, le=10_000)], ...] = Field(
        default=(5, 10, 25, 50), description="Depth bands around mid, in basis points."
    )
    keep_raw_arrays: bool = Field(default=False, description="Add the raw bid/ask level arrays to HF rows.")
    tight_spread_threshold: float = Field(
        default=0.0001, gt=0, lt=1, description="rel_spread at or below which the book counts as tight."
    )
    regime_window: PositiveSeconds = Field(
        default=30, description="Window in seconds of depth variance and the tight-spread fraction."
    )
    allowed_lateness_ms: int = Field(
        default=250,
        ge=0,
        le=60_000,
        description=(
            "Event-time tolerance in ms for ticks arriving out of order: the interval ending at t "
            "closes once the symbol's event time passes t + this, and ticks within it are applied "
            "in event-time order. 250 covers cross-channel skew: Binance stamps a depth diff with "
            "the end of its 100 ms window (up to 100 ms after the trades inside it) and sends "
            "trades on another connection; 250 leaves 150 ms of skew between the connections. "
            "0: ticks applied on arrival, only the open interval tolerates disorder."
        ),
    )

    ibars: IbarsConfig = Field(
        default_factory=IbarsConfig,
        description="Information-driven bars (tick, volume, dollar, tick imbalance) in the ibars table; off by "
        "default.",
    )

    @field_validator("horizons", "bar_durations", "bands_bps")
    @classmethod
    def _sorted_unique(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value:
            raise ValueError("must list at least one value")
        return _sorted_unique(value)

    @field_validator("hf_emit_interval")
    @classmethod
    def _whole_milliseconds(cls, value: float) -> float:
        if abs(value * 1000 - round(value * 1000)) > 1e-9:
            raise ValueError(f"must be a whole number of milliseconds, got {value}")
        return value

    @model_validator(mode="after")
    def _windows_fit_grid(self) -> StateConfig:
        if self.ofi_levels > self.max_levels:
            raise ValueError(f"ofi_levels ({self.ofi_levels}) must be <= max_levels ({self.max_levels})")
        step = self.interval_ms
        for name, windows in (
            ("horizons", self.horizons),
            ("bar_durations", self.bar_durations),
            ("regime_window", [self.regime_window]),
        ):
            bad = [w for w in windows if (w * 1000) % step]
            if bad:
                raise ValueError(
                    f"{name} {bad} are not whole multiples of hf_emit_interval={self.hf_emit_interval}s; "
                    "choose windows that are, or a smaller hf_emit_interval"
                )
        return self

    @model_validator(mode="after")
    def _distinct_band_names(self) -> StateConfig:
        # Whole seconds up to a day always print apart; bands are floats.
        names = [fmt_bps(bps) for bps in self.bands_bps]
        same = sorted({name for name in names if names.count(name) > 1})
        if same:
            raise ValueError(
                f"bands_bps {list(self.bands_bps)} give the same column suffix {', '.join(same)} "
                "(6 significant digits): keep one of each"
            )
        return self

    @property
    def interval_ms(self) -> int:
        return round(self.hf_emit_interval * 1000)

    @property
    def unfilled_tables(self) -> frozenset[str]:
        """Dataset tables this configuration gives no rows: `ibars` while no information-driven bar is
        configured."""
        return frozenset() if self.ibars.enabled else frozenset({"ibars"})

    def parameters_json(self) -> str:
        """The parameters as JSON, for fingerprints and file metadata. Without the `ibars` section while
        it is off, so configurations that do not use it keep the fingerprint they had before it existed
        (their stored states and files stay valid)."""
        return self.model_dump_json(exclude=None if self.ibars.enabled else {"ibars"})
