"""Deterministic simulated crypto market: raw envelopes for demos, tests and offline runs.

`MarketSimulator(SimulatorConfig(seed=7)).ticks()` is an endless stream of
book/trade/ticker envelopes (docs/design.md "Raw messages"), byte-identical for a
seed. `SymbolMarket` is one book on its own, for front ends that need the
level changes rather than envelopes.
"""

from fluxforge_common.simulator.config import SimulatorConfig
from fluxforge_common.simulator.fair import FairValue
from fluxforge_common.simulator.market import Fill, LevelChange, StepKind, SymbolMarket
from fluxforge_common.simulator.specs import AssetSpec, SymbolSpec, symbol_spec
from fluxforge_common.simulator.stream import MarketSimulator, build_markets

__all__ = [
    "AssetSpec",
    "FairValue",
    "Fill",
    "LevelChange",
    "MarketSimulator",
    "SimulatorConfig",
    "StepKind",
    "SymbolMarket",
    "SymbolSpec",
    "build_markets",
    "symbol_spec",
]
