"""`python -m fluxforge.cli` runs the `fluxforge` command."""

from fluxforge.cli.app import main

main()
