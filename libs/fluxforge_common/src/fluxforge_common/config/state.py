"""StateConfig: the feature engine's parameters and their defaults.

The engine aggregates flows per grid interval, so every window (horizons, bars,
the regime window) must be a whole number of `hf_emit_interval`s; checking that
at start turns a silent approximation into a clear error.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PositiveSeconds = Annotated[int, Field(ge=1, le=86_400)]


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

    @field_validator("horizons", "bar_durations", "bands_bps")
    @classmethod
    def _sorted_unique(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value:
            raise ValueError("must list at least one value")
        if len(set(value)) != len(value):
            raise ValueError(f"values must be unique, got {value}")
        return tuple(sorted(value))

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

    @property
    def interval_ms(self) -> int:
        return round(self.hf_emit_interval * 1000)
