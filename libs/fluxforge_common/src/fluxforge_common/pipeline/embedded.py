"""The embedded pipeline: raw lines -> decode -> engine -> Parquet tables, raw archive, dead-letter.

One process, no Kafka. The reprocess mode and the Kafka services reuse the
same `FeatureEngine`; this class only wires it to local writers.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fluxforge_native import HfRows

from fluxforge_common.config.settings import FluxForgeSettings
from fluxforge_common.dataset.interrupted import RunJournal
from fluxforge_common.dataset.partitioning import MS_PER_DAY, Channel, utc_date
from fluxforge_common.dataset.provenance import provenance
from fluxforge_common.features import (
    TABLES,
    EngineOutput,
    FeatureEngine,
    SymbolState,
    output_tables,
    table_schema,
)
from fluxforge_common.features.engine import TickEngine
from fluxforge_common.messages import DecodedTick, Rejection, channel_of, decode_tick, event_time
from fluxforge_common.pipeline.ingest_stamp import stamp
from fluxforge_common.storage.base import StorageBackend
from fluxforge_common.storage.space import DiskFullError
from fluxforge_common.writers.common import WrittenFile
from fluxforge_common.writers.ndjson import DeadLetterWriter, RawArchiveWriter
from fluxforge_common.writers.parquet import PartitionedParquetWriter

# Lines between hand-offs (rows to the writers, accepted ticks per symbol to the summary),
# fewer when `parquet.flush_rows` is small; also how often the disk's reserve is checked.
HAND_OFF_LINES = 4096
# Lines between looks at the clock (flush interval, progress line): a live feed of a few symbols
# brings a few lines a second, so HAND_OFF_LINES would hold its files for many minutes.
CLOCK_LINES = 16


def _engine_error_reason(exc: Exception) -> str:
    return f"engine error: {type(exc).__name__}: {exc}"


@dataclass
class RunSummary:
    """What a run read and wrote: the closing report and the progress line come from it."""

    lines: int = 0
    accepted: int = 0
    rejected: int = 0
    late: int = 0
    duplicates: int = 0
    first_event_ms: int | None = None
    last_event_ms: int | None = None
    rows: Counter[str] = field(default_factory=Counter)  # per table the configuration fills, zeros included
    per_symbol: Counter[str] = field(default_factory=Counter)
    files: list[WrittenFile] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    disk_full: DiskFullError | None = None  # why the run stopped before its input ended
    needs_recovery: bool = False  # the disk filled before everything was written


class EmbeddedPipeline:
    """Feeds raw lines through the engine into a dataset root.

    Reprocessing passes `archive_raw=False` (it reads the archive, it must not
    write it again), `write_dead_letter=False` (the recording run already
    dead-lettered the same late and duplicate ticks) and `keep_dates` (only the
    rows of its dates are written). A `journal` learns the date of every tick before it
    is archived and is finished by `close()`, so that a run that dies is found
    and recovered (`pipeline.recovery`).

    A full disk stops the run, never crashes it (`summary.disk_full` says
    why). Below the storage's reserve (checked every 4096 lines and before each flush) the run
    closes as at the end of its input, writing into the reserve. When a write
    finds no space at all, the raw archive and the dead letters are written as
    far as they fit and the feature rows are left to `fluxforge recover`, which
    rebuilds them from the archive (`summary.needs_recovery`; the journal stays).

    `source` describes the input in every Parquet file's provenance
    (`dataset.provenance`): the mode and what was read.

    Per line, `feed` decodes, archives and applies (a known symbol's book, trade or ticker decoded
    and applied in one native call, `FeatureEngine.apply_line`); handing rows to the writers and counting
    per symbol wait for the next hand-off (every `HAND_OFF_LINES` lines of `run`, and
    `flush_files`/`close`).
    """

    def __init__(
        self,
        settings: FluxForgeSettings,
        storage: StorageBackend,
        *,
        archive_raw: bool = True,
        write_dead_letter: bool = True,
        keep_dates: Collection[str] | None = None,
        journal: RunJournal | None = None,
        clock: Callable[[], float] = time.time,
        source: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.engine: TickEngine = FeatureEngine(settings.features)
        self.out = EngineOutput()
        self.summary = RunSummary(rows=Counter(dict.fromkeys(output_tables(settings.features), 0)))
        self.keep_dates = keep_dates
        self._clock = clock
        parquet = settings.parquet
        footer = provenance(settings.features, source or {"mode": "embedded"}).metadata()
        self.writers = {
            table: PartitionedParquetWriter(
                storage,
                table,
                table_schema(table, settings.features),
                compression=parquet.compression,
                row_group_size=parquet.row_group_size,
                metadata=footer,
            )
            for table in TABLES
        }
        raw_archive = settings.raw_archive
        self.archive = (
            RawArchiveWriter(
                storage,
                compression=raw_archive.compression,
                segment_max_bytes=raw_archive.segment_max_mb << 20,
                segment_max_age_ms=raw_archive.segment_max_age_s * 1000,
                sync_interval_s=raw_archive.sync_interval_s,
            )
            if archive_raw
            else None
        )
        self.deadletter = (
            DeadLetterWriter(storage, batch_size=settings.deadletter.max_records)
            if write_dead_letter
            else None
        )
        self.journal = journal
        self._journal_day = (0, 0)  # [start, end) ms of the last date noted in the journal
        self._session = int(clock() * 1000)
        self._last_flush = clock()
        self._max_bytes = settings.messages.max_bytes
        # A power of two, so that every reserve check of `run` (each HAND_OFF_LINES) follows a
        # hand-off; at most an eighth of `flush_rows`, so that the files a writer flushes stay near
        # that size.
        lines = min(settings.parquet.flush_rows // 8, HAND_OFF_LINES)
        self._hand_off_lines = 1 << max(0, lines.bit_length() - 1)
        self._accepted: dict[SymbolState, int] = {}  # ticks accepted per symbol since the last hand-off

    def feed(self, raw: bytes, source: str, line_no: int | None = None) -> int | None:
        """Process one raw line; returns its tick's event time (None when decoding refused it).

        A dead letter names where it came from: `source`, or `source:line_no` given
        the line number (the label is made only for a line that needs one).
        """
        summary = self.summary
        n = summary.lines = summary.lines + 1
        try:
            applied = self.engine.apply_line(raw, self._max_bytes, self.out)
        except Exception as exc:  # a defect inside the native path: the line goes on as in `_apply`
            applied = self._engine_error(raw, exc)
        if applied is None:
            return self._feed_decoded(raw, source, line_no, n)
        state, channel, t, reason = applied
        self._archive(raw, state.exchange, channel, t, n)
        return self._accept(state, t, reason, raw, source, line_no)

    def _feed_decoded(self, raw: bytes, source: str, line_no: int | None, n: int) -> int | None:
        """`feed` of a line the engine's native path did not take."""
        item = decode_tick(raw, self._max_bytes)
        if isinstance(item, Rejection):
            self._dead_letter(item, source, line_no)
            return None
        tick = item.tick
        t = event_time(tick)
        self._archive(raw, tick.exchange, channel_of(tick), t, n)
        state = self.engine.state_for(tick.exchange, tick.symbol)
        return self._accept(state, t, self._apply(state, item), raw, source, line_no)

    def _apply(self, state: SymbolState, item: DecodedTick) -> str | None:
        try:
            return self.engine.apply(state, item, self.out)
        except Exception as exc:
            # A defect, not bad input (validation has passed it): the run goes on, as the stack's
            # does, and the tick is in the archive for a reprocess once the defect is fixed.
            return _engine_error_reason(exc)

    def _engine_error(self, raw: bytes, exc: Exception) -> tuple[SymbolState, Channel, int, str]:
        """What `feed` goes on with when the engine's native path raised on `raw`."""
        item = decode_tick(raw, self._max_bytes)
        assert isinstance(item, DecodedTick), "the native path takes only lines that decode"
        tick = item.tick
        state = self.engine.state_for(tick.exchange, tick.symbol)
        return state, channel_of(tick), event_time(tick), _engine_error_reason(exc)

    def _archive(self, raw: bytes, exchange: str, channel: Channel, t: int, n: int) -> None:
        """Archive the n-th line, accepted by decoding, at once, not with the hand-offs: the
        archive's sync bounds what a crash loses."""
        if self.archive is None:
            return
        if self.journal is not None and not self._journal_day[0] <= t < self._journal_day[1]:
            self.journal.note(utc_date(t))
            start = t - t % MS_PER_DAY
            self._journal_day = (start, start + MS_PER_DAY)
        completed = self.archive.append(exchange, channel, t, stamp(raw, self._session, n))
        if completed:
            self.summary.files += completed

    def _accept(
        self, state: SymbolState, t: int, reason: str | None, raw: bytes, source: str, line_no: int | None
    ) -> int:
        """Count a tick the engine applied to `state`, or dead-letter it for `reason`."""
        if reason:
            self._dead_letter(Rejection(raw, reason), source, line_no)
            return t
        summary = self.summary
        summary.accepted += 1
        accepted = self._accepted
        accepted[state] = accepted.get(state, 0) + 1
        if summary.first_event_ms is None:
            summary.first_event_ms = t
        last = summary.last_event_ms
        if last is None or t > last:
            summary.last_event_ms = t
        return t

    def run(
        self,
        lines: Iterable[bytes],
        source: str,
        *,
        max_events: int | None = None,
        duration_s: float | None = None,
        on_progress: Callable[[RunSummary], None] | None = None,
    ) -> RunSummary:
        """Feed `lines` until they end, `max_events` lines were read, or `duration_s` of event time passed.

        The clock (flush interval, progress) is read every `CLOCK_LINES` lines and at each `IDLE`
        (`pipeline.lines`) a source yields while it has nothing, so a silent feed's rows still
        become files.
        """
        end_ms: int | None = None
        next_progress = self._clock() + 1.0
        hand_off = self._hand_off_lines
        flush_interval_s = self.settings.embedded.flush_interval_s
        n = 0
        try:
            for raw in lines:
                if raw:  # else `IDLE`: the source had no line for a while
                    n += 1
                    t = self.feed(raw, source, n)
                    if t is not None and duration_s is not None:
                        if end_ms is None:
                            end_ms = t + int(duration_s * 1000)
                        if t >= end_ms:
                            break
                    if max_events is not None and n >= max_events:
                        break
                    if n % hand_off == 0:
                        self._hand_off()
                    if n % HAND_OFF_LINES == 0:
                        self.storage.check_space()
                    if n % CLOCK_LINES:
                        continue
                now = self._clock()
                if now - self._last_flush >= flush_interval_s:
                    self.storage.check_space()  # the files go over the reserve, not past it
                    self.flush_files()
                if on_progress is not None and now >= next_progress:
                    on_progress(self.summary)
                    next_progress = now + 1.0
        except DiskFullError as exc:
            self.summary.disk_full = exc
            if not exc.reserve_bytes:
                return self._keep_what_fits()
        return self.close()

    def _dead_letter(self, rejection: Rejection, source: str, line_no: int | None) -> None:
        summary = self.summary
        summary.rejected += 1
        summary.reasons[rejection.reason.split(":")[0]] += 1
        if self.deadletter is not None:
            label = source if line_no is None else f"{source}:{line_no}"
            summary.files += self.deadletter.write(
                rejection.reason, rejection.raw, label, int(self._clock() * 1000)
            )

    def _hand_off(self) -> None:
        """What `feed` left for later: rows to the writers, counts to the summary."""
        summary = self.summary
        self._collect()
        per_symbol = summary.per_symbol
        for state, count in self._accepted.items():
            per_symbol[f"{state.exchange}:{state.symbol}"] += count
        self._accepted.clear()

    def _collect(self) -> None:
        """Every row `out` holds to its writer, then each writer that holds `parquet.flush_rows`
        flushed: rows leave `out` as their writer takes them, before any flush can fail."""
        out = self.out
        summary = self.summary
        summary.late = out.late
        summary.duplicates = out.duplicates
        if out.hf:
            summary.rows["hf"] += self._add_hf(out.hf)
            out.hf.clear()
        for table, rows in (
            ("bars", out.bars),
            ("trades", out.trades),
            ("ticker", out.ticker),
            ("ibars", out.ibars),
        ):
            if rows:
                summary.rows[table] += self._add(table, rows)
                rows.clear()
        limit = self.settings.parquet.flush_rows
        for writer in self.writers.values():
            if writer.buffered_rows >= limit:
                summary.files += writer.flush()

    def _add_hf(self, hf: HfRows) -> int:
        """The HF rows into their writer as cells (`add_read`), or as dicts where it takes no cells;
        how many it took."""
        rows = hf.read_rows()
        keep = self.keep_dates
        if rows is not None and keep is not None:
            rows = rows.select([utc_date(first_ts) in keep for _, _, first_ts, _ in rows.partitions()])
        if rows is None or self.writers["hf"].add_read(rows) is None:
            return self._add("hf", hf)
        return len(rows)

    def _add(self, table: str, rows: Sequence[dict[str, Any]]) -> int:
        keep = self.keep_dates
        kept = rows if keep is None else [row for row in rows if utc_date(row["ts"]) in keep]
        self.writers[table].add(kept)
        return len(kept)

    def flush_files(self) -> None:
        """Make everything buffered visible as files (segments of the archive stay open)."""
        self._hand_off()
        for writer in self.writers.values():
            self.summary.files += writer.flush()
        if self.deadletter is not None:
            self.summary.files += self.deadletter.flush()
        self._last_flush = self._clock()

    def close(self) -> RunSummary:
        """End of input: flush the engine's open intervals and write everything out."""
        try:
            self.engine.flush(self.out)
            self.flush_files()
            if self.archive is not None:
                self.summary.files += self.archive.close()
        except DiskFullError as exc:
            self.summary.disk_full = exc
            return self._keep_what_fits()
        if self.journal is not None:
            self.journal.finish()
        return self.summary

    def _keep_what_fits(self) -> RunSummary:
        """After a write found the disk full: seal the raw archive and write the dead letters, as far
        as they fit; the journal stays, so `fluxforge recover` rebuilds the features from the archive."""
        self.summary.needs_recovery = True
        for writer in (self.archive, self.deadletter):
            if writer is not None:
                with contextlib.suppress(OSError):  # what did not fit stays unsealed or is rebuilt
                    self.summary.files += writer.close()
        if self.journal is not None:
            self.journal.release()
        return self.summary
