"""The settings a ccxt.pro exchange is built with: the configured options over FluxForge's defaults."""

from __future__ import annotations

from typing import Any

from fluxforge_common.config import ExchangeConfig

# Binance's watch_tickers defaults to the miniTicker stream, which has no bid/ask. Its trades
# are watched as aggregate trades: their ids are the ones the keyless REST trade history
# (`aggTrades` by `fromId`) serves, so a gap can be backfilled (`backfill`).
_BINANCE = {
    "watchTickers": {"name": "ticker"},
    "watchTrades": {"name": "aggTrade"},
    "watchTradesForSymbols": {"name": "aggTrade"},
}
# Options merged under the configured ones, per ccxt id.
DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {"binance": _BINANCE, "binanceus": _BINANCE}
# Subscription parameters of a channel's watch, per ccxt id. Kraken's trade subscription may send
# the symbol's last 50 trades first: at the start they predate the recording (refused as late), and
# after a reconnect they hold trades of the outage that would pass for live ones, behind the books
# already received. Asked without them, an outage's trades all come from the backfill, marked.
WATCH_PARAMS: dict[str, dict[str, dict[str, Any]]] = {"kraken": {"trade": {"snapshot": False}}}


def watch_params(exchange_id: str, channel: str) -> dict[str, Any]:
    """The parameters the watch of `channel` subscribes with on `exchange_id` (a new dict each time)."""
    return dict(WATCH_PARAMS.get(exchange_id, {}).get(channel, {}))


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`base` with `over` on top; nested mappings are merged key by key."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def ccxt_settings(exchange_id: str, config: ExchangeConfig, credentials: dict[str, str]) -> dict[str, Any]:
    """The constructor argument of the ccxt.pro class: rate limiting on, options, credentials, URL overrides."""
    options = deep_merge(DEFAULT_OPTIONS.get(exchange_id, {}), config.options)
    settings: dict[str, Any] = {"enableRateLimit": True, "options": options, **credentials}
    if config.urls:
        settings["urls"] = config.urls
    return settings
