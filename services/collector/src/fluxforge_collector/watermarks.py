"""Which watermark records the collector publishes, and when (docs/design.md "Raw messages", Watermarks).

A symbol's own ticks move its event time forward, so a busy symbol needs no
watermark. `WatermarkClock.quiet`, called once per quiet period, makes one for
each symbol that had no tick during the whole period: the latest event time the
collector has seen from that symbol's exchange, minus the allowed lateness (a
quiet symbol's tick may still trail the other symbols by that much). Where the
exchange stamps ticks, only its stamps count: a tick without `ts` carries the
collector's receive clock, ahead of the exchange's by the feed's latency, as the
engine keeps a symbol's event time on the exchange's clock. `final`
makes the one that ends a finite input: the grid point after the symbol's
latest event time (`closing_watermark`). A key's watermarks only move forward,
also across restarts: `WatermarkMemory` keeps the last one per topic and key
in the spool directory, written before the record can reach the spool.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import orjson
from fluxforge_common.features import closing_watermark
from fluxforge_common.messages import Watermark
from fluxforge_common.storage.local import replace_file

MEMORY_FILE = "watermarks.json"


class WatermarkMemory:
    """The last watermark published per key of one topic, in `<spool dir>/watermarks.json` (atomic writes)."""

    def __init__(self, directory: Path, topic: str) -> None:
        self.path = directory / MEMORY_FILE
        self.topic = topic
        self._all: dict[str, dict[str, int]] = {}
        if self.path.exists():
            try:
                self._all = orjson.loads(self.path.read_bytes())
            except orjson.JSONDecodeError as exc:
                raise ValueError(
                    f"{self.path} is not readable ({exc}); delete it to start the watermarks afresh"
                ) from None

    def load(self) -> dict[bytes, int]:
        return {key.encode(): ms for key, ms in self._all.get(self.topic, {}).items()}

    def save(self, last: dict[bytes, int]) -> None:
        self._all[self.topic] = {key.decode(): ms for key, ms in last.items()}
        replace_file(self.path, orjson.dumps(self._all))


class WatermarkClock:
    """Per-key event times seen, and the watermark records due (bytes to batch under the key)."""

    def __init__(
        self,
        *,
        interval_ms: int,
        lateness_ms: int,
        memory: WatermarkMemory | None = None,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.interval_ms = interval_ms
        self.lateness_ms = lateness_ms
        self.memory = memory
        self.wall_ms = wall_ms
        self.latest: dict[bytes, int] = {}  # key -> latest event time seen
        self.latest_stamped: dict[bytes, int] = {}  # key -> latest event time the exchange stamped
        self.published: dict[bytes, int] = {} if memory is None else memory.load()
        self.count = 0  # watermark records made
        self._active: set[bytes] = set()  # keys with a tick since the last `quiet` round
        self._names: dict[bytes, tuple[str, str]] = {}

    def seen(self, key: bytes, event_ms: int, stamped: bool = True) -> None:
        """A tick of `key` at `event_ms` (its `ts`, or `recv_ts` when not `stamped`) was batched (the hot
        path: a few dict operations)."""
        latest = self.latest.get(key)
        if latest is None or event_ms > latest:
            self.latest[key] = event_ms
        if stamped:
            latest = self.latest_stamped.get(key)
            if latest is None or event_ms > latest:
                self.latest_stamped[key] = event_ms
            self._active.add(key)
        elif key not in self.latest_stamped:  # else only the exchange's stamps move its time
            self._active.add(key)

    def quiet(self) -> list[tuple[bytes, bytes]]:
        """Watermarks for the keys with no tick since the previous call, where they move time forward."""
        stamped_ms = self._per_exchange(self.latest_stamped)
        exchange_ms = stamped_ms | {
            e: ms for e, ms in self._per_exchange(self.latest).items() if e not in stamped_ms
        }
        due = {}
        for key, latest in self.latest.items():
            if key in self._active:
                continue
            exchange = self._name(key)[0]
            exchange_time = exchange_ms[exchange]
            ms = self.latest_stamped.get(key, latest) if exchange in stamped_ms else latest
            if exchange_time > ms:  # else the symbol's own ticks already say as much
                due[key] = exchange_time - self.lateness_ms
        self._active.clear()
        return self._records(due)

    def _per_exchange(self, latest: dict[bytes, int]) -> dict[str, int]:
        """The latest of `latest`'s event times per exchange."""
        exchange_ms: dict[str, int] = {}
        for key, ms in latest.items():
            exchange = self._name(key)[0]
            if ms > exchange_ms.get(exchange, ms - 1):
                exchange_ms[exchange] = ms
        return exchange_ms

    def final(self) -> list[tuple[bytes, bytes]]:
        """Watermarks that end every key's input: its last interval closes, as at the end of a file."""
        return self._records(
            {key: closing_watermark(ms, self.interval_ms) for key, ms in self.latest.items()}
        )

    def lag_ms(self, now_ms: int) -> dict[tuple[str, str], int]:
        """(exchange, symbol) -> wall clock minus the symbol's watermark (its own ticks' one, or published)."""
        lags = {}
        for key, ms in self.latest.items():
            mark = max(ms - self.lateness_ms, self.published.get(key, ms - self.lateness_ms))
            lags[self._name(key)] = now_ms - mark
        return lags

    def _records(self, due: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
        published = self.published
        forward = {key: ms for key, ms in due.items() if ms > published.get(key, ms - 1)}
        if not forward:
            return []
        published.update(forward)
        if (
            self.memory is not None
        ):  # before any record can reach the spool: never a lower one after a restart
            self.memory.save(published)
        now = self.wall_ms()
        self.count += len(forward)
        return [
            (key, msgspec.json.encode(Watermark(*self._name(key), ts=ms, recv_ts=now)))
            for key, ms in forward.items()
        ]

    def _name(self, key: bytes) -> tuple[str, str]:
        names = self._names.get(key)
        if names is None:
            exchange, _, symbol = key.decode().partition(":")
            names = self._names[key] = (exchange, symbol)
        return names
