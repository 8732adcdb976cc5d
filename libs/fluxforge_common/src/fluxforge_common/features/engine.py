"""FeatureEngine: routes validated ticks to their SymbolState. Pure: no I/O, no clock."""

from __future__ import annotations

from fluxforge_common.config.state import StateConfig
from fluxforge_common.features.output import EngineOutput
from fluxforge_common.features.symbol_state import SymbolState
from fluxforge_common.messages.decoding import DecodedTick, Rejection


class FeatureEngine:
    """One engine for every run mode: embedded, Faust worker (one key at a time) and reprocess."""

    def __init__(self, cfg: StateConfig) -> None:
        self.cfg = cfg
        self.states: dict[tuple[str, str], SymbolState] = {}

    def state_for(self, exchange: str, symbol: str) -> SymbolState:
        key = (exchange, symbol)
        state = self.states.get(key)
        if state is None:
            state = self.states[key] = SymbolState(self.cfg, exchange, symbol)
        return state

    def process(self, item: DecodedTick, out: EngineOutput) -> None:
        tick = item.tick
        state = self.state_for(tick.exchange, tick.symbol)
        reason = state.process(tick, tick.recv_ts if tick.ts is None else tick.ts, out, item.book)
        if reason:
            out.rejected.append(Rejection(item.raw, reason))

    def flush(self, out: EngineOutput) -> None:
        for state in self.states.values():
            state.flush(out)
