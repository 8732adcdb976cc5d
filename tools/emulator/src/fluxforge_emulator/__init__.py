"""Local Binance and Kraken spot exchanges, to run and test the ccxt.pro collector without the internet.

`ExchangeEmulator` (Binance) and `KrakenEmulator` (asyncio), and
`EmulatorThread` (either on a loop of its own, for sync callers) serve the
simulated market over the exchange's REST and websocket protocol on
127.0.0.1, and inject faults on demand; the `fluxforge-emulator` command
(`python -m fluxforge_emulator`) runs one from the shell. See `server` and
`kraken` for what they speak and `feed` for how the market becomes events;
`starve` starves the client's own event loop of CPU, the fault a saturated
core causes.
"""

from fluxforge_emulator.feed import MarketFeed, market_id
from fluxforge_emulator.kraken import KrakenEmulator
from fluxforge_emulator.server import EmulatorConfig, EmulatorStats, ExchangeEmulator
from fluxforge_emulator.starve import starved
from fluxforge_emulator.thread import EmulatorThread

__all__ = [
    "EmulatorConfig",
    "EmulatorStats",
    "EmulatorThread",
    "ExchangeEmulator",
    "KrakenEmulator",
    "MarketFeed",
    "market_id",
    "starved",
]
