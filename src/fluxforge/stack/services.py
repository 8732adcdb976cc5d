"""Which processes make up a local stack, and how each is started."""

from __future__ import annotations

import sys
from pathlib import Path

from fluxforge.stack.processes import ServiceSpec


def fluxforge_argv(*args: str) -> list[str]:
    """`fluxforge ARGS` run by this interpreter: the services' deployed entry points."""
    return [sys.executable, "-m", "fluxforge.cli", *args]


def stack_services(config: Path | None, root: Path, *, speed: float, workers: int) -> list[ServiceSpec]:
    """Collector on the simulated market, `workers` feature-engine workers, one Parquet sink.

    Ordered so that `up` starts consumers before the producer and `down` stops
    them in reverse: the collector flushes first, the sink writes last.
    """
    common = ["--config", str(config)] if config is not None else []
    services = [
        ServiceSpec(
            "sink", fluxforge_argv("sink", *common, "--root", str(root), "--instance-id", "stack-sink-1")
        ),
    ]
    services += [
        ServiceSpec(
            f"engine-{i}",
            fluxforge_argv("engine", *common, "--data-dir", str(Path(".cache/run/faust") / f"stack-{i}")),
        )
        for i in range(1, workers + 1)
    ]
    services.append(
        ServiceSpec(
            "collector",
            fluxforge_argv("collect", *common, "--source", "simulator", "--speed", f"{speed:g}"),
        )
    )
    return services
