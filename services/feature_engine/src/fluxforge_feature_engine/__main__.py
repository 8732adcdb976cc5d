"""`python -m fluxforge_feature_engine`: the same as the `fluxforge-feature-engine` command."""

from fluxforge_feature_engine.app import main

main()
