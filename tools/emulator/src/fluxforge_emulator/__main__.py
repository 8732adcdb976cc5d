"""`python -m fluxforge_emulator`, the same as the `fluxforge-emulator` command."""

from fluxforge_emulator.cli import main

main()
