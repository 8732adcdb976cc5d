"""FluxForge feature engine service: the shared engine over Kafka, as a faust-streaming app.

One agent reads `<prefix>.raw`; each symbol's `SymbolState` lives in a Faust
table backed by the compacted changelog `<app-id>-symbol-state-changelog`.
Workers of one `--app-id` share the raw partitions; a new app id is a new
consumer group and changelog, so a topic can be recomputed beside the live one.
Topics and headers are in docs/design.md "Kafka transport"; why the worker runs
at-least-once and still gives exactly-once results, crash by crash, is in
"Delivery guarantees". The faust-streaming/aiokafka patches it needs are in
`compat`.
"""
