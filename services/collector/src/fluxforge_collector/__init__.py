"""FluxForge collector service: market sources -> validated ticks -> per-symbol batches on Kafka.

`sources` (what a source is, simulator/file/archive sources), `exchange`
(live exchanges through ccxt.pro), `batcher` (grouping ticks into one Kafka
value per symbol), `collector` (the bounded, backpressured publish loop),
`spool` (the on-disk log every batch passes through) and `drainer` (spool ->
Kafka, through outages, once each), `backoff` (the wait between retries),
`metrics` (Prometheus), `launch` (options and the run behind the
`fluxforge collect`/`replay` commands, the service's one entry point),
`option_help` (what those options are and say, also offered by `fluxforge run`).
The package imports none of them: `fluxforge run` needs few.
"""
