"""`python -m fluxforge_s3_sync` runs the s3_sync service."""

from fluxforge_s3_sync.app import main

main()
