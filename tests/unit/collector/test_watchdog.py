"""The stall watchdog fails a silent connection, never one whose frames wait behind a blocked event loop."""

from __future__ import annotations

import asyncio
import contextlib

from fluxforge_collector.exchange.stats import ExchangeStats
from fluxforge_collector.exchange.watchdog import SilentFeeds, fail_stalled_connections


def test_a_feed_is_stalled_only_when_silent_on_two_checks_with_no_frame_between() -> None:
    feeds = SilentFeeds(stall_ms=1000)
    assert not feeds.stalled("ws", last=0, now=900)
    assert not feeds.stalled("ws", last=0, now=1500)  # silent once: the loop may just have been blocked
    assert not feeds.stalled("ws", last=1400, now=2500)  # a frame was handled since: silent again, anew
    assert feeds.stalled("ws", last=1400, now=3500)
    assert not feeds.stalled("ws", last=1400, now=4500)  # reported once, then judged anew
    assert not feeds.stalled("ws", last=None, now=5000)


class FakeClient:
    def __init__(self, url: str) -> None:
        self.url = url
        self.isConnected = True
        self.connectionEstablished = 0
        self.last_message_at: int | None = 0
        self.errors: list[BaseException] = []

    def closed(self) -> bool:
        return False

    def on_error(self, exc: BaseException) -> None:
        self.errors.append(exc)


def test_the_watchdog_fails_the_silent_connection_not_the_one_behind_a_blocked_loop() -> None:
    busy, silent = FakeClient("busy"), FakeClient("silent")
    checks: list[int] = []

    class Exchange:
        def __init__(self) -> None:
            self.clients = {"busy": busy, "silent": silent}

        def milliseconds(self) -> int:
            if len(checks) == 5:
                raise asyncio.CancelledError  # the watchdog's end, after five checks
            # Each check comes 10 ms (over the 4 ms timeout) after the last, after a blocked loop:
            # the busy feed's last frame was handled just after the previous check, never since.
            now = 10 * (len(checks) + 1)
            busy.last_message_at = now - 10
            checks.append(now)
            return now

    async def main() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await fail_stalled_connections(Exchange(), 0.004, stats, "test")

    stats = ExchangeStats()
    asyncio.run(main())
    assert busy.errors == []
    assert len(silent.errors) == 2 and stats.stalls == 2  # checks 2 and 4: two checks per stall
