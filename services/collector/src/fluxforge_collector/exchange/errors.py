"""Exchange failures: the one that stops a source before it starts, and how long to wait out the others."""

from __future__ import annotations

import contextlib
from typing import Any

from fluxforge_collector.backoff import Backoff
from fluxforge_collector.exchange.stats import ExchangeStats


class ExchangeSetupError(ValueError):
    """The exchange cannot be watched at all (unknown id, no valid symbol, bad credentials file)."""


def retryable(exc: BaseException) -> bool:
    """Errors worth waiting out: the network, the exchange down or busy (5xx, -1001), rate limits.

    (ccxt's `OperationFailed` is the parent of `NetworkError`; Binance's -1001
    "internal error" maps to it.)
    """
    import ccxt.pro as ccxtpro

    return isinstance(exc, ccxtpro.OperationFailed | ccxtpro.ExchangeNotAvailable)


def retry_delay(exc: BaseException, backoff: Backoff, exchange: Any, stats: ExchangeStats) -> float:
    """The backoff's next wait; after a 429/418, at least the exchange's `Retry-After`."""
    import ccxt.pro as ccxtpro

    delay = backoff.next()
    if isinstance(exc, ccxtpro.DDoSProtection | ccxtpro.RateLimitExceeded):
        stats.rate_limited += 1
        headers = getattr(exchange, "last_response_headers", None) or {}
        retry_after = headers.get("Retry-After") or headers.get("retry-after")
        if retry_after is not None:
            with contextlib.suppress(TypeError, ValueError):
                delay = max(delay, float(retry_after))
    return delay


def brief(exc: BaseException) -> str:
    """An error for the log: its class and the start of its message, without ccxt's advice."""
    text = str(exc).split(". You can", 1)[0]
    return f"{type(exc).__name__}: {text[:160]}"
