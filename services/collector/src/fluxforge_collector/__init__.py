"""FluxForge collector service: market sources -> validated ticks -> per-symbol batches on Kafka.

`sources` (what a source is, simulator/file/archive sources), `exchange`
(live exchanges through ccxt.pro), `batcher` (grouping ticks into one Kafka
value per symbol), `collector` (the bounded, backpressured publish loop),
`spool` (the on-disk log every batch passes through) and `drainer` (spool ->
Kafka, through outages, once each), `backoff` (the wait between retries),
`metrics` (Prometheus), `launch` (options and the run behind the
`fluxforge collect`/`replay` commands, the service's one entry point).
"""

from fluxforge_collector.batcher import Batcher
from fluxforge_collector.collector import Collector, CollectorStats, Limits
from fluxforge_collector.drainer import PublishError
from fluxforge_collector.launch import CollectOptions, CollectorError, build_source, make_collector, publish
from fluxforge_collector.sources import (
    IteratorSource,
    TickSource,
    archive_source,
    file_source,
    simulator_source,
)

__all__ = [
    "Batcher",
    "CollectOptions",
    "Collector",
    "CollectorError",
    "CollectorStats",
    "IteratorSource",
    "Limits",
    "PublishError",
    "TickSource",
    "archive_source",
    "build_source",
    "file_source",
    "make_collector",
    "publish",
    "simulator_source",
]
