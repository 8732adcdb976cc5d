"""Ports of the servers a test session starts for itself, one set per pytest-xdist worker.

`scripts/test.sh` runs the suite on two workers (`-n 2`), each a session of its own with its own
session fixtures: both start an s3proxy, a broker of their own and a secure broker when their tests
need one. Worker `gwN` adds N × `PORTS_PER_WORKER` to each base port, so the servers, and the run
dirs `scripts/kafka.sh`/`scripts/s3.sh` keep per port (`.cache/run/<service>-<port>`), never meet.
Without xdist (`-n 0`, `-p no:xdist`) the base ports are used as they are. Topics, consumer groups
and buckets on a shared server need no offset: every test names its own (`tests.support.kafka`).
"""

from __future__ import annotations

import os

# Room for the widest server (the secure broker: 4 ports from its base) with a margin; the base
# ports of the fixtures (`FLUXFORGE_S3_PORT`, `FLUXFORGE_E2E_KAFKA_PORT`,
# `FLUXFORGE_SECURE_KAFKA_PORT`) are chosen so that up to 10 workers' sets do not overlap.
PORTS_PER_WORKER = 10


def worker_index() -> int:
    """0, 1, ... for xdist's workers gw0, gw1, ...; 0 without xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker.removeprefix("gw")) if worker else 0


def server_port(variable: str, default: int) -> int:
    """The base port `$variable` (else `default`) of a server of this session, moved to this worker's set."""
    return int(os.environ.get(variable, str(default))) + PORTS_PER_WORKER * worker_index()
