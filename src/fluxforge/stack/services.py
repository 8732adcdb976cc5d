"""Which processes make up a local stack, and how each is started."""

from __future__ import annotations

import sys
from pathlib import Path

from fluxforge.stack.processes import ServiceSpec


def stack_services(config: Path | None, root: Path, *, speed: float, workers: int) -> list[ServiceSpec]:
    """Collector on the simulated market, `workers` feature-engine workers, one Parquet sink.

    Ordered so that `up` starts consumers before the producer and `down` stops
    them in reverse: the collector flushes first, the sink writes last.
    """
    python = sys.executable
    common = ["--config", str(config)] if config is not None else []
    services = [
        ServiceSpec(
            "sink",
            [
                python,
                "-m",
                "fluxforge_parquet_sink",
                *common,
                "--root",
                str(root),
                "--instance-id",
                "stack-sink-1",
            ],
        ),
    ]
    services += [
        ServiceSpec(
            f"engine-{i}",
            [
                python,
                "-m",
                "fluxforge_feature_engine",
                *common,
                "--data-dir",
                str(Path(".cache/run/faust") / f"stack-{i}"),
            ],
        )
        for i in range(1, workers + 1)
    ]
    services.append(
        ServiceSpec(
            "collector",
            [python, "-m", "fluxforge_collector", *common, "--source", "simulator", "--speed", f"{speed:g}"],
        )
    )
    return services
