"""`EmulatorThread`: the emulator on an event loop of its own, for synchronous callers (tests, benches).

The collector runs `asyncio.run` in the calling thread, so the emulator lives
in another one. Faults and the recorded truth are reached through `call`,
which runs a function on the emulator's loop and returns its result.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from fluxforge_emulator.server import EmulatorConfig, ExchangeEmulator

T = TypeVar("T")
START_TIMEOUT_S = 30.0


class EmulatorThread:
    """`with EmulatorThread(config) as emu:` a running emulator; `emu.call(lambda e: e.gap("BTC/USDT"))`."""

    def __init__(
        self, config: EmulatorConfig | None = None, protocol: type[ExchangeEmulator] = ExchangeEmulator
    ) -> None:
        self.emulator = protocol(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="exchange emulator", daemon=True)

    def start(self) -> EmulatorThread:
        self._thread.start()
        if not self._started.wait(START_TIMEOUT_S):
            raise TimeoutError("the exchange emulator did not start")
        if self._error is not None:
            raise RuntimeError(f"the exchange emulator failed to start: {self._error!r}") from self._error
        return self

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.emulator.start()
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            await self.emulator.stop()

    def call(self, fn: Callable[[ExchangeEmulator], T], timeout: float = 30.0) -> T:
        """Run `fn(emulator)` on the emulator's loop and return what it returns."""
        loop = self._loop
        assert loop is not None, "not started"

        async def run() -> T:
            return fn(self.emulator)

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(30)

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Addresses do not change once started, so they are read directly.
    @property
    def rest_url(self) -> str:
        return self.emulator.rest_url

    @property
    def base_url(self) -> str:
        return self.emulator.base_url

    def ccxt_urls(self) -> dict[str, Any]:
        return self.emulator.ccxt_urls()

    def ccxt_options(self) -> dict[str, Any]:
        return self.emulator.ccxt_options()
