"""An engine that raises on chosen ticks, for the tests of how a defect in the engine is contained.

The kernel's classes may be compiled (`fluxforge_common.kernel`), and a compiled class's methods
cannot be patched; so the fault wraps the engine object the pipeline or processor holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from fluxforge_common.features import EngineOutput, FeatureEngine, SymbolState
from fluxforge_common.features.engine import TickEngine
from fluxforge_common.messages import BookTick, decode_tick
from fluxforge_common.messages.decoded import DecodedTick


class FailingEngine:
    """Applies every tick with `engine`, but raises `error` where `fails(state, item)` says so:
    in the native book path too where `native`, else every line goes through `apply`."""

    def __init__(
        self,
        engine: TickEngine,
        fails: Callable[[SymbolState, DecodedTick], bool],
        error: Exception,
        *,
        native: bool = False,
    ) -> None:
        self.engine = engine
        self.fails = fails
        self.error = error
        self.native = native

    @property
    def states(self) -> dict[tuple[str, str], SymbolState]:
        return self.engine.states

    def state_for(self, exchange: str, symbol: str) -> SymbolState:
        return self.engine.state_for(exchange, symbol)

    def apply(self, state: SymbolState, item: DecodedTick, out: EngineOutput) -> str | None:
        if self.fails(state, item):
            raise self.error
        return self.engine.apply(state, item, out)

    def apply_book_line(
        self, raw: bytes, max_bytes: int, out: EngineOutput
    ) -> tuple[SymbolState, int, str | None] | None:
        if not self.native:
            return None
        item = decode_tick(raw, max_bytes)
        if isinstance(item, DecodedTick) and type(item.tick) is BookTick and self._fails_on(item):
            raise self.error
        return self.engine.apply_book_line(raw, max_bytes, out)

    def _fails_on(self, item: DecodedTick) -> bool:
        return self.fails(self.engine.state_for(item.tick.exchange, item.tick.symbol), item)

    def flush(self, out: EngineOutput) -> None:
        self.engine.flush(out)


def failing(
    engine: TickEngine,
    fails: Callable[[SymbolState, DecodedTick], bool],
    error: Exception,
    *,
    native: bool = False,
) -> FeatureEngine:
    """`engine` with the fault, typed as the processor holds its engine (the pipeline holds any
    `TickEngine`)."""
    return cast(FeatureEngine, FailingEngine(engine, fails, error, native=native))
