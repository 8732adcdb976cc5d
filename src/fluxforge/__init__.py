"""FluxForge's Python API (README "Python API").

`fluxforge.open(root)` reads a dataset's tables with partition pruning and
hands them over as pyarrow, Polars or pandas; `fluxforge.features(ticks)` runs
the feature engine over ticks in memory. Names are imported on first use, so
`import fluxforge` (and the CLI's start) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fluxforge.api.dataset import Dataset
    from fluxforge.api.dataset import open_dataset as open
    from fluxforge.api.experiment import Features, features
    from fluxforge.api.selection import Selection

__all__ = ["Dataset", "Features", "Selection", "features", "open"]

_LAZY = {
    "Dataset": ("fluxforge.api.dataset", "Dataset"),
    "open": ("fluxforge.api.dataset", "open_dataset"),
    "Features": ("fluxforge.api.experiment", "Features"),
    "features": ("fluxforge.api.experiment", "features"),
    "Selection": ("fluxforge.api.selection", "Selection"),
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("fluxforge")
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'fluxforge' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), attr)
