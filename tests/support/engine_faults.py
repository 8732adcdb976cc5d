"""An engine that raises on chosen ticks, for the tests of how a defect in the engine is contained.

The kernel's classes may be compiled (`fluxforge_common.kernel`), and a compiled class's methods
cannot be patched; so the fault wraps the engine object the pipeline or processor holds, or, inside
the native book path, the state the kernel calls back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from fluxforge_common.dataset.partitioning import Channel
from fluxforge_common.features import EngineOutput, FeatureEngine, SymbolState
from fluxforge_common.features.engine import TickEngine
from fluxforge_common.messages.decoded import DecodedTick
from fluxforge_common.messages.decoding import tick_lane


class _Wrapped:
    """`engine` as it is, for a fault to override one of its methods."""

    def __init__(self, engine: TickEngine) -> None:
        self.engine = engine

    @property
    def states(self) -> Mapping[tuple[str, str], SymbolState]:
        return self.engine.states

    def state_for(self, exchange: str, symbol: str) -> SymbolState:
        return self.engine.state_for(exchange, symbol)

    def apply(self, state: SymbolState, item: DecodedTick, out: EngineOutput) -> str | None:
        return self.engine.apply(state, item, out)

    def apply_line(
        self, raw: bytes, max_bytes: int, out: EngineOutput
    ) -> tuple[SymbolState, Channel, int, str | None] | None:
        return self.engine.apply_line(raw, max_bytes, out)

    def apply_lines_to(
        self, state: SymbolState, lines: list[bytes], start: int, max_bytes: int, out: EngineOutput
    ) -> tuple[int, int, list[tuple[int, str]]]:
        return cast(FeatureEngine, self.engine).apply_lines_to(state, lines, start, max_bytes, out)

    def flush(self, out: EngineOutput) -> None:
        self.engine.flush(out)


class FailingEngine(_Wrapped):
    """Applies every tick with `engine`, but raises `error` where `fails(state, item)` says so
    (every line goes through `apply`: the native path takes none)."""

    def __init__(
        self,
        engine: TickEngine,
        fails: Callable[[SymbolState, DecodedTick], bool],
        error: Exception,
    ) -> None:
        super().__init__(engine)
        self.fails = fails
        self.error = error

    def apply(self, state: SymbolState, item: DecodedTick, out: EngineOutput) -> str | None:
        if self.fails(state, item):
            raise self.error
        return self.engine.apply(state, item, out)

    def apply_line(
        self, raw: bytes, max_bytes: int, out: EngineOutput
    ) -> tuple[SymbolState, Channel, int, str | None] | None:
        return None

    def apply_lines_to(
        self, state: SymbolState, lines: list[bytes], start: int, max_bytes: int, out: EngineOutput
    ) -> tuple[int, int, list[tuple[int, str]]]:
        return start, 0, []


def failing(
    engine: TickEngine, fails: Callable[[SymbolState, DecodedTick], bool], error: Exception
) -> FeatureEngine:
    """`engine` with the fault, typed as the processor holds its engine (the pipeline holds any
    `TickEngine`)."""
    return cast(FeatureEngine, FailingEngine(engine, fails, error))


class _ClosingFails:
    """A symbol's state whose interval closes raise `error`; the rest is the state's."""

    def __init__(self, state: SymbolState, error: Exception) -> None:
        self.state = state
        self.error = error

    def __getattr__(self, name: str) -> Any:
        return getattr(self.state, name)

    def _close_interval(self, *args: object) -> None:
        raise self.error


class TickLaneFault(_Wrapped):
    """`engine`, but the native path raises `error` from inside the kernel wherever a book or
    trade of `exchange` `symbol` closes an interval (its core calls the state back there)."""

    def __init__(self, engine: FeatureEngine, exchange: str, symbol: str, error: Exception) -> None:
        super().__init__(engine)
        self.names = exchange, symbol
        self.error = error
        self.lane = engine._lane
        state = engine.state_for(exchange, symbol)
        self.lane.register(exchange, symbol, state.core, _ClosingFails(state, error))
        self.one_lane = tick_lane()

    def apply_line(
        self, raw: bytes, max_bytes: int, out: EngineOutput
    ) -> tuple[SymbolState, Channel, int, str | None] | None:
        # The lane itself: the compiled engine would refuse the wrapper it returns.
        return _unwrapped(self.lane.apply(raw, max_bytes, out))

    def apply_lines_to(
        self, state: SymbolState, lines: list[bytes], start: int, max_bytes: int, out: EngineOutput
    ) -> tuple[int, int, list[tuple[int, str]]]:
        # `FeatureEngine.apply_lines_to`'s lane of one state, given the wrapper of the fault's symbol.
        held = _ClosingFails(state, self.error) if (state.exchange, state.symbol) == self.names else state
        self.one_lane.clear()
        self.one_lane.register(state.exchange, state.symbol, state.core, held)
        return self.one_lane.apply_lines(lines, start, max_bytes, out)


def _unwrapped(
    applied: tuple[Any, Channel, int, str | None] | None,
) -> tuple[SymbolState, Channel, int, str | None] | None:
    if applied is None:
        return None
    state, channel, event_ms, reason = applied
    return (state.state if isinstance(state, _ClosingFails) else state), channel, event_ms, reason
