"""`python -m fluxforge_collector` runs the collector (as the fluxforge-collector entry point does)."""

from fluxforge_collector.app import main

main()
