"""Live exchanges through ccxt.pro: `ExchangeSource`, the collector's `TickSource` for one exchange.

Connection handling is kept apart from what each exchange sends: `source`
(the source: setup, queue, stop), `watchers` (a reconnecting loop per channel
and symbol group), `watchdog` (stalled connections), `envelopes` (ccxt's data
as raw envelopes), `ccxt_client` (the ccxt.pro class the source watches
through, with `ccxt_fast` hot paths, `ccxt_checks` book checks and
`ccxt_resync` (a gap resyncs one symbol) mixed in),
`options` and `credentials` (how the ccxt client is built), `errors`,
`stats` and `stopping`.
"""

from fluxforge_collector.exchange.credentials import load_credentials
from fluxforge_collector.exchange.errors import ExchangeSetupError
from fluxforge_collector.exchange.source import ExchangeSource, exchange_source
from fluxforge_collector.exchange.stats import ExchangeStats, WatcherRecovery

__all__ = [
    "ExchangeSetupError",
    "ExchangeSource",
    "ExchangeStats",
    "WatcherRecovery",
    "exchange_source",
    "load_credentials",
]
