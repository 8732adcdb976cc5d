"""FeatureEngine: applies validated ticks to their SymbolState. Pure: no I/O, no clock."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol

from fluxforge_common.config.state import StateConfig
from fluxforge_common.dataset.partitioning import Channel
from fluxforge_common.features.output import EngineOutput
from fluxforge_common.features.symbol_state import SymbolState
from fluxforge_common.messages.decoded import DecodedTick, Rejection
from fluxforge_common.messages.decoding import tick_lane
from fluxforge_common.messages.envelopes import event_time


class TickEngine(Protocol):
    """What a run mode applies ticks with: a `FeatureEngine`, or a wrapper of one (a compiled run
    mode checks the types of its attributes, so a test's faulty engine cannot stand in for the class)."""

    @property
    def states(self) -> Mapping[tuple[str, str], SymbolState]: ...

    def state_for(self, exchange: str, symbol: str) -> SymbolState: ...

    def apply(self, state: SymbolState, item: DecodedTick, out: EngineOutput) -> str | None: ...

    def apply_line(
        self, raw: bytes, max_bytes: int, out: EngineOutput
    ) -> tuple[SymbolState, Channel, int, str | None] | None: ...

    def flush(self, out: EngineOutput) -> None: ...


class FeatureEngine:
    """One engine for every run mode.

    The embedded and reprocess runs keep every symbol's state in it (`process`,
    `flush`; `apply_line` first for each line); the Faust worker keeps each symbol's state in
    its table and applies a message's ticks to it with `apply_lines_to`, then `apply`.
    """

    def __init__(self, cfg: StateConfig) -> None:
        self.cfg = cfg
        self._states: dict[tuple[str, str], SymbolState] = {}
        self._lane = tick_lane()  # takes the ticks of every state in `_states`
        self._one_lane = tick_lane()  # takes the ticks of `_one_state` only (`apply_lines_to`)
        self._one_state: SymbolState | None = None

    @property
    def states(self) -> Mapping[tuple[str, str], SymbolState]:
        """Every symbol's state, read-only: `state_for` makes them, `put_state` replaces one."""
        return MappingProxyType(self._states)

    def state_for(self, exchange: str, symbol: str) -> SymbolState:
        """The state of a symbol whose names passed decoding's checks (made on first use)."""
        key = (exchange, symbol)
        state = self._states.get(key)
        if state is None:
            state = SymbolState(self.cfg, exchange, symbol)
            self.put_state(state)
        return state

    def put_state(self, state: SymbolState) -> None:
        """Hold `state` (one restored from its bytes, say) for its symbol, in place of any other."""
        self._states[state.exchange, state.symbol] = state
        self._lane.register(state.exchange, state.symbol, state.core, state)

    def apply(self, state: SymbolState, item: DecodedTick, out: EngineOutput) -> str | None:
        """Apply one tick to `state` at its event time; the reason when the state refuses it."""
        tick = item.tick
        return state.process(tick, event_time(tick), out)

    def apply_line(
        self, raw: bytes, max_bytes: int, out: EngineOutput
    ) -> tuple[SymbolState, Channel, int, str | None] | None:
        """`raw` decoded and applied in one native call where it is a valid book, trade or ticker of
        at most `max_bytes` of a symbol with a state here (`fluxforge_native.TickLane`): its state,
        its channel, its event time and the reason the state refused it, or None. None, with
        nothing changed, for any other line: decode it and `apply` it. A line gives the same rows,
        state and reason either way."""
        return self._lane.apply(raw, max_bytes, out)

    def apply_lines_to(
        self, state: SymbolState, lines: list[bytes], start: int, max_bytes: int, out: EngineOutput
    ) -> tuple[int, int, list[tuple[int, str]]]:
        """`apply_line` for a state held elsewhere (the Faust worker's table), on `lines` from `start`
        on in one native call, until a line it does not take: (that line's index, or `len(lines)`;
        how many were applied; each refused line's index and why). A line is taken only where it
        is a tick of `state`'s symbol, whose names the caller checked (`messages.names_reason`); a
        line of another symbol is left for decoding, as any line the lane does not take."""
        if state is not self._one_state:
            self._one_lane.clear()
            self._one_lane.register(state.exchange, state.symbol, state.core, state)
            self._one_state = state
        return self._one_lane.apply_lines(lines, start, max_bytes, out)

    def process(self, item: DecodedTick, out: EngineOutput) -> None:
        tick = item.tick
        reason = self.apply(self.state_for(tick.exchange, tick.symbol), item, out)
        if reason:
            out.rejected.append(Rejection(item.raw, reason))

    def flush(self, out: EngineOutput) -> None:
        for state in self._states.values():
            state.flush(out)
