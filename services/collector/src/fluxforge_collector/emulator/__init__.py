"""A local Binance spot exchange for testing the ccxt.pro collector without the internet.

`ExchangeEmulator` (asyncio) and `EmulatorThread` (its own loop, for sync
callers) serve the simulated market over Binance's REST and websocket
protocol on 127.0.0.1, and inject faults on demand; `python -m
fluxforge_collector.emulator` runs one from the shell. See `server` for what
it speaks and `feed` for how the market becomes stream events.
"""

from fluxforge_collector.emulator.feed import MarketFeed, market_id
from fluxforge_collector.emulator.server import EmulatorConfig, EmulatorStats, ExchangeEmulator
from fluxforge_collector.emulator.thread import EmulatorThread

__all__ = ["EmulatorConfig", "EmulatorStats", "EmulatorThread", "ExchangeEmulator", "MarketFeed", "market_id"]
