"""Local Binance and Kraken spot exchanges for testing the ccxt.pro collector without the internet.

`ExchangeEmulator` (Binance) and `KrakenEmulator` (asyncio), and
`EmulatorThread` (either on a loop of its own, for sync callers) serve the
simulated market over the exchange's REST and websocket protocol on
127.0.0.1, and inject faults on demand; `python -m
fluxforge_collector.emulator` runs one from the shell. See `server` and
`kraken` for what they speak and `feed` for how the market becomes events.
"""

from fluxforge_collector.emulator.feed import MarketFeed, market_id
from fluxforge_collector.emulator.kraken import KrakenEmulator
from fluxforge_collector.emulator.server import EmulatorConfig, EmulatorStats, ExchangeEmulator
from fluxforge_collector.emulator.thread import EmulatorThread

__all__ = [
    "EmulatorConfig",
    "EmulatorStats",
    "EmulatorThread",
    "ExchangeEmulator",
    "KrakenEmulator",
    "MarketFeed",
    "market_id",
]
