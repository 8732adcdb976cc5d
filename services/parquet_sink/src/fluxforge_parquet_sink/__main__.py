"""`python -m fluxforge_parquet_sink` runs the sink service."""

from fluxforge_parquet_sink.app import main

main()
