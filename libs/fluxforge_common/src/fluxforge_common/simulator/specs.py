"""Per-asset and per-symbol market parameters: price grid, typical sizes, volatility.

Known pairs get exchange-like grids (Binance US and Kraken tick and lot sizes);
anything else gets a generic one-dollar asset, so every configured symbol
still makes a valid market.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class AssetSpec:
    """What all markets of one base asset share (their common fair value)."""

    price: float  # starting fair price in USD
    vol_bps: float  # calm-regime volatility of the fair price, basis points per sqrt(second)
    level_notional: float  # mean resting size of one book level, in quote currency
    trade_notional: float  # mean market order size, in quote currency
    quote_volume_24h: float  # 24h quote volume the ticker's rolling volume starts from


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """One market's grid and its offset from the asset's fair price."""

    asset: AssetSpec
    tick: str  # price increment, as an exact decimal string
    lot: str  # size increment, as an exact decimal string
    basis_bps: float  # this market's premium over the asset's fair price (USD vs USDT, venue)
    gap_bps: float = 0.02  # mean distance between adjacent levels near the touch


_ASSETS = {
    "BTC": AssetSpec(
        price=100_000.0, vol_bps=0.10, level_notional=8_000.0, trade_notional=4_000.0, quote_volume_24h=300e6
    ),
    "ETH": AssetSpec(
        price=3_900.0, vol_bps=0.15, level_notional=6_000.0, trade_notional=3_000.0, quote_volume_24h=150e6
    ),
    "SOL": AssetSpec(
        price=220.0, vol_bps=0.20, level_notional=3_000.0, trade_notional=1_500.0, quote_volume_24h=50e6
    ),
}
_GENERIC_ASSET = AssetSpec(
    price=1.0, vol_bps=0.25, level_notional=500.0, trade_notional=250.0, quote_volume_24h=1e6
)

# (exchange, base) -> (tick, lot); other exchanges use Binance US's grid for the base.
_GRIDS = {
    ("binanceus", "BTC"): ("0.01", "0.00001"),
    ("binanceus", "ETH"): ("0.01", "0.0001"),
    ("binanceus", "SOL"): ("0.01", "0.001"),
    ("kraken", "BTC"): ("0.1", "0.00000001"),
    ("kraken", "ETH"): ("0.01", "0.00000001"),
    ("kraken", "SOL"): ("0.01", "0.00000001"),
}
_GENERIC_GRID = ("0.0001", "0.1")

# USD books trade a little above USDT ones; a constant basis keeps venues apart but tied.
_QUOTE_BASIS_BPS = {"USD": 1.5}


def base_asset(symbol: str) -> str:
    """`BTC` for `BTC/USDT` and `BTC/USDT:USDT`: markets of one base share a fair price."""
    return symbol.split("/", 1)[0]


def asset_spec(base: str) -> AssetSpec:
    """The asset's parameters, or the generic one-dollar asset's."""
    return _ASSETS.get(base, _GENERIC_ASSET)


def symbol_spec(exchange: str, symbol: str) -> SymbolSpec:
    """The market's parameters: the exchange's grid for the pair, or a generic grid."""
    base = base_asset(symbol)
    quote = symbol.split("/", 1)[1].split(":", 1)[0]
    if base in _ASSETS:
        tick, lot = _GRIDS.get((exchange, base), _GRIDS[("binanceus", base)])
    else:
        tick, lot = _GENERIC_GRID
    return SymbolSpec(asset=asset_spec(base), tick=tick, lot=lot, basis_bps=_QUOTE_BASIS_BPS.get(quote, 0.0))


def decimal_units(step: str) -> tuple[int, int]:
    """`"0.05"` -> `(5, 100)`: a grid step as integer units over a power of ten.

    `index * units / scale` is one correctly rounded division, so a price or
    size serialises as its short decimal (`100000.5`, never `100000.50000000001`).
    """
    value = Decimal(step)
    exponent = max(0, -int(value.as_tuple().exponent))
    scale = 10**exponent
    return int(value * scale), scale
