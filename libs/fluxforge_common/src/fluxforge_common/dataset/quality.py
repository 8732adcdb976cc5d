"""The data-quality report of a dataset, per exchange and symbol, from the files alone.

Everything comes from what the dataset holds, so last month's report needs no
running service: the HF grid (`update_count == 0` marks a carried-forward
row: no book update in that interval, the feed was silent; a grid point
without a row at all between two of the symbol's rows: nothing was recorded
then, e.g. the recorder was down), the raw archive
(event and receive times, trade ids, and the `resync` mark the collector puts
on the first book after it resynchronised a symbol on a sequence gap or a
failed checksum), and the dead letters (reasons; late ticks, crossed and
empty books are refusals like any other).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from fluxforge_common.dataset.location import DatasetRoot, dataset_root
from fluxforge_common.dataset.partitioning import DEADLETTER_TABLE, MS_PER_DAY, parse_segment
from fluxforge_common.dataset.raw_reader import scan_raw
from fluxforge_common.dataset.reader import read_table
from fluxforge_common.dataset.timespec import utc_ms
from fluxforge_common.messages.decoding import MAX_TS_MS, MIN_TS_MS
from fluxforge_common.writers.ndjson import read_lines

LATE: Final = "late event"
CROSSED: Final = "crossed or locked book"
EMPTY: Final = "empty book"
UNATTRIBUTED: Final = ("", "")  # dead letters whose bytes name no exchange and symbol
PERCENTILES: Final = (50, 90, 99)
# As long as the collector's default stall timeout: a live feed this quiet would have been reconnected.
MIN_SILENT_S: Final = 30.0


@dataclass
class SymbolQuality:
    """One exchange:symbol's findings; `clean` when nothing needs a look."""

    exchange: str
    symbol: str
    hf_rows: int = 0
    carried_rows: int = 0  # grid rows without a book update in their interval
    silent_stretches: list[tuple[int, int]] = field(default_factory=list)  # [start, end) ms of carried rows
    missing_rows: int = 0  # grid points between the symbol's first and last row that have no row
    missing_stretches: list[tuple[int, int]] = field(default_factory=list)  # [first, end) ms of those
    ticks: int = 0
    resyncs: int = 0  # books marked as the first after a resync (gap or reconnect)
    sequence_gaps: int = 0  # of those, resyncs after a sequence gap or failed checksum
    trade_id_gaps: int = 0  # trade ids missing between two archived trades (ids that count up by one)
    backfilled_trades: int = 0  # trades the collector fetched over REST after a disconnect or an id gap
    dead_letters: Counter[str] = field(default_factory=Counter)  # reason (up to its first ':') -> count
    # p50/p90/p99/max of recv_ts - ts; not of backfilled trades, whose recv_ts is when they were fetched
    latency_ms: dict[str, int] = field(default_factory=dict)

    @property
    def coverage(self) -> float:
        """Share of the grid points, from the symbol's first row to its last, whose row has a fresh book
        (1.0 without HF rows)."""
        points = self.hf_rows + self.missing_rows
        return 1.0 - (self.carried_rows + self.missing_rows) / points if points else 1.0

    @property
    def late_ticks(self) -> int:
        return self.dead_letters[LATE]

    @property
    def crossed_books(self) -> int:
        return self.dead_letters[CROSSED]

    @property
    def empty_books(self) -> int:
        return self.dead_letters[EMPTY]

    @property
    def clean(self) -> bool:
        return not (
            self.silent_stretches
            or self.missing_stretches
            or self.resyncs
            or self.trade_id_gaps
            or self.dead_letters
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            coverage=round(self.coverage, 6),
            late_ticks=self.late_ticks,
            crossed_books=self.crossed_books,
            empty_books=self.empty_books,
            clean=self.clean,
            dead_letters=dict(sorted(self.dead_letters.items())),
            silent_stretches=[list(s) for s in self.silent_stretches],
            missing_stretches=[list(s) for s in self.missing_stretches],
        )
        return data


Entry = Callable[[str, str], SymbolQuality]


@dataclass
class QualityReport:
    """Per exchange:symbol findings over `[start_ms, end_ms)`; dead letters that name no symbol apart."""

    root: str
    start_ms: int | None
    end_ms: int | None
    min_silent_s: float
    symbols: list[SymbolQuality]
    unattributed_dead_letters: Counter[str]

    @property
    def empty(self) -> bool:
        """Nothing was found for the dates asked: a day not recorded or the wrong root, never "clean"."""
        return not self.symbols and not self.unattributed_dead_letters

    @property
    def clean(self) -> bool:
        return not self.empty and all(s.clean for s in self.symbols) and not self.unattributed_dead_letters

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "min_silent_s": self.min_silent_s,
            "clean": self.clean,
            "empty": self.empty,
            "symbols": [s.to_json() for s in self.symbols],
            "unattributed_dead_letters": dict(sorted(self.unattributed_dead_letters.items())),
        }


def quality_report(
    storage_root: str | Path | DatasetRoot, *, date: str | None = None, min_silent_s: float = MIN_SILENT_S
) -> QualityReport:
    """The report of one UTC `date` (every date when None); a silent stretch is `min_silent_s` or more
    of consecutive carried-forward grid rows; FileNotFoundError when the root does not exist."""
    root = dataset_root(storage_root).existing()
    start_ms = utc_ms(date) if date is not None else None
    end_ms = start_ms + MS_PER_DAY if start_ms is not None else None
    found: dict[tuple[str, str], SymbolQuality] = {}

    def entry(exchange: str, symbol: str) -> SymbolQuality:
        key = (exchange, symbol)
        if key not in found:
            found[key] = SymbolQuality(exchange, symbol)
        return found[key]

    _grid(root, start_ms, end_ms, min_silent_s, entry)
    _archive(root, start_ms, end_ms, entry)
    unattributed: Counter[str] = Counter()
    for (exchange, symbol), reason in _dead_letters(root, start_ms, end_ms):
        if (exchange, symbol) == UNATTRIBUTED:
            unattributed[reason] += 1
        else:
            entry(exchange, symbol).dead_letters[reason] += 1
    return QualityReport(
        root.uri, start_ms, end_ms, min_silent_s, [found[k] for k in sorted(found)], unattributed
    )


def _grid(
    root: DatasetRoot, start_ms: int | None, end_ms: int | None, min_silent_s: float, entry: Entry
) -> None:
    hf = read_table(
        root, "hf", start_ms=start_ms, end_ms=end_ms, columns=["exchange", "symbol", "ts", "update_count"]
    )
    if hf.num_rows == 0:
        return
    hf = hf.sort_by([("exchange", "ascending"), ("symbol", "ascending"), ("ts", "ascending")])
    exchanges, symbols = hf.column("exchange").to_pylist(), hf.column("symbol").to_pylist()
    stamps = hf.column("ts").cast("int64").to_pylist()
    updates = hf.column("update_count").to_pylist()
    interval = _grid_interval(stamps, exchanges, symbols)
    run: list[int] = []  # ts of the current stretch of carried rows

    def close(quality: SymbolQuality) -> None:
        if run and (run[-1] - run[0] + interval) >= min_silent_s * 1000:
            quality.silent_stretches.append((run[0] - interval, run[-1]))
        run.clear()

    previous: SymbolQuality | None = None
    last_ts = 0
    for exchange, symbol, ts, count in zip(exchanges, symbols, stamps, updates, strict=True):
        quality = entry(exchange, symbol)
        if quality is not previous and previous is not None:
            close(previous)
        elif previous is not None and ts - last_ts > interval:
            close(quality)  # a silent stretch does not go on across the hole
            quality.missing_rows += (ts - last_ts) // interval - 1
            quality.missing_stretches.append((last_ts + interval, ts))
        previous, last_ts = quality, ts
        quality.hf_rows += 1
        if count == 0:
            quality.carried_rows += 1
            run.append(ts)
        else:
            close(quality)
    if previous is not None:
        close(previous)


def _grid_interval(stamps: list[int], exchanges: list[str], symbols: list[str]) -> int:
    """The grid step: the smallest positive step between a symbol's consecutive rows (1 s if none)."""
    steps = [
        b - a
        for a, b, e1, e2, s1, s2 in zip(
            stamps, stamps[1:], exchanges, exchanges[1:], symbols, symbols[1:], strict=False
        )
        if e1 == e2 and s1 == s2 and b > a
    ]
    return min(steps, default=1000)


def _archive(root: DatasetRoot, start_ms: int | None, end_ms: int | None, entry: Entry) -> None:
    latencies: dict[tuple[str, str], list[int]] = {}
    last_trade: dict[tuple[str, str], int] = {}
    for _channel, head, _line in scan_raw(root, start_ms=start_ms, end_ms=end_ms).lines():
        key = (head.exchange, head.symbol)
        quality = entry(*key)
        quality.ticks += 1
        if head.backfilled:
            quality.backfilled_trades += 1
        elif head.ts is not None:
            latencies.setdefault(key, []).append(head.recv_ts - head.ts)
        if head.resync is not None:
            quality.resyncs += 1
            quality.sequence_gaps += head.resync == "gap"
        if head.id is not None and head.id.isdigit():
            number = int(head.id)
            last = last_trade.get(key)
            if last is not None and number > last + 1:
                quality.trade_id_gaps += number - last - 1
            elif last is not None and number < last and head.backfilled:
                quality.trade_id_gaps -= 1  # published once, after later ids: it fills a gap counted there
            if last is None or number > last:
                last_trade[key] = number
    for key, values in latencies.items():
        values.sort()
        entry(*key).latency_ms = {
            **{f"p{p}": values[min(len(values) - 1, (len(values) * p) // 100)] for p in PERCENTILES},
            "max": values[-1],
        }


def _dead_letters(
    root: DatasetRoot, start_ms: int | None, end_ms: int | None
) -> Iterator[tuple[tuple[str, str], str]]:
    """(exchange, symbol) named by each dead letter of the span (or UNATTRIBUTED), and its reason category.

    Dead letters are filed by when they were refused: a replayed or reprocessed day, or a tick
    refused after midnight, lands in a later partition. A record counts for the span its tick's
    event time falls in, or, without one, for the date it was filed under; partitions before the
    span's day (less a day of clock skew) cannot hold it.
    """
    files, _dirs = root.walk(DEADLETTER_TABLE)
    for rel in files:
        parts = rel.split("/")
        if len(parts) != 3 or parts[2].startswith(".") or not parts[2].endswith(".ndjson"):
            continue
        try:
            filed_ms = utc_ms(parse_segment(parts[1], "date"))
        except ValueError:
            continue  # `fluxforge validate` reports it
        if start_ms is not None and filed_ms < start_ms - MS_PER_DAY:
            continue
        with root.open_input(rel) as stream:
            for line in read_lines(stream):
                if line.strip():
                    record = orjson.loads(line)
                    names, event_ms = _named(record.get("raw"))
                    at = filed_ms if event_ms is None else event_ms
                    if start_ms is None or end_ms is None or start_ms <= at < end_ms:
                        yield names, str(record.get("reason", "")).split(":")[0]


def _named(raw: Any) -> tuple[tuple[str, str], int | None]:
    """The (exchange, symbol) a dead letter's bytes name (or UNATTRIBUTED), and their event time if any."""
    if not isinstance(raw, str):
        return UNATTRIBUTED, None
    try:
        tick = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return UNATTRIBUTED, None
    if not isinstance(tick, dict):
        return UNATTRIBUTED, None
    # A stamp validation would refuse (seconds, microseconds, far off) dates the record to no report.
    stamps = [tick.get(name) for name in ("ts", "recv_ts")]
    event_ms = next(
        (t for t in stamps if isinstance(t, int) and not isinstance(t, bool) and MIN_TS_MS <= t < MAX_TS_MS),
        None,
    )
    if isinstance(tick.get("exchange"), str) and isinstance(tick.get("symbol"), str):
        return (tick["exchange"], tick["symbol"]), event_ms
    return UNATTRIBUTED, event_ms
