"""One raw Kafka message -> the shared engine -> output messages and the symbol's new table value.

Pure: no Kafka, no Faust, no clock except the one passed in (for dead-letter
timestamps). The Faust agent (`worker.py`) is a thin shell around
`MessageProcessor.process`, which the unit tests drive directly.

The table value of a symbol (`encode_stored`) is the `SymbolState` bytes plus the
raw (partition, offset) of the last message applied to them, which is what
makes re-running a message after a crash harmless (see the package docstring).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from fluxforge_common.config.state import StateConfig
from fluxforge_common.features import TABLES, EngineOutput, FeatureEngine, SymbolState
from fluxforge_common.kafka import Completeness, TopicNames, complete_header
from fluxforge_common.kafka.keys import parse_key
from fluxforge_common.kafka.lineage import Headers, source_headers
from fluxforge_common.messages import (
    DecodedWatermark,
    Rejection,
    batch_elements,
    decode_element,
    names_reason,
)
from fluxforge_common.messages.decoding import DEFAULT_MAX_MESSAGE_BYTES
from fluxforge_common.messages.rows import encode_rows
from fluxforge_common.writers.ndjson import dead_letter_record

STORED_FORMAT = 1
# Symbols whose state `MessageProcessor` keeps decoded between their messages, the most recent:
# restoring a state from its bytes takes ~100 us, most of the work of a message of a few ticks,
# and a state held decoded takes ~9 KB (~36 MiB for all of them).
DECODED_STATES = 4096
# Feature messages are split into chunks of about this size (a long quiet stretch emits many grid
# rows at once); Kafka's default message size limit is 1 MiB.
OUTPUT_CHUNK_BYTES = 512 * 1024


class StateError(Exception):
    """A stored symbol state that cannot be restored (format, feature config, corruption): fatal.

    Not bad input: every later message of the symbol would fail the same way, so
    the worker stops with this message instead of dead-lettering a whole market.
    """


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to send: topic, key, value and lineage headers."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers


@dataclass(slots=True)
class MessageResult:
    """What one raw message produced; `table_value` None means leave the table alone."""

    outgoing: list[Outgoing] = field(default_factory=list)
    table_value: bytes | None = None
    elements: int = 0
    applied: int = 0
    watermarks: int = 0
    watermark_rows: int = 0  # HF rows the watermarks closed
    rejected: int = 0
    rows: int = 0
    skipped: bool = False
    tables: list[tuple[str, int, int]] = field(default_factory=list)  # (table, rows, newest row's ts in ms)


def encode_stored(partition: int, offset: int, state: bytes) -> bytes:
    return msgspec.msgpack.encode([STORED_FORMAT, partition, offset, state])


def decode_stored(value: bytes) -> tuple[int, int, bytes]:
    """(raw partition, raw offset, SymbolState bytes) of a table value; StateError if unreadable."""
    try:
        version, partition, offset, state = msgspec.msgpack.decode(value)
    except (msgspec.DecodeError, TypeError, ValueError) as exc:
        raise StateError(f"stored symbol state is unreadable: {exc}") from exc
    if version != STORED_FORMAT or not isinstance(state, bytes):
        raise StateError(f"stored symbol state has format {version!r}, expected {STORED_FORMAT}")
    return int(partition), int(offset), state


def row_chunks(rows: list[dict[str, Any]], limit: int = OUTPUT_CHUNK_BYTES) -> list[bytes]:
    """`encode_rows` of `rows`, split into consecutive chunks of at most ~`limit` bytes each."""
    data = encode_rows(rows)
    if len(data) <= limit or len(rows) == 1:
        return [data]
    half = len(rows) // 2
    return row_chunks(rows[:half], limit) + row_chunks(rows[half:], limit)


class MessageProcessor:
    """Applies raw batches to symbol states with the shared engine (`FeatureEngine.apply`).

    The state a message leaves is kept decoded with the table value it was written as; the
    symbol's next message uses it when its stored value is that same value (a state is exactly
    what its bytes restore), and restores the stored bytes otherwise (another worker, a failed
    message, a state evicted from the `DECODED_STATES` kept).
    """

    def __init__(
        self,
        cfg: StateConfig,
        outputs: TopicNames,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.engine = FeatureEngine(cfg)
        self.features = [(table, outputs.features[table]) for table in TABLES]
        self.deadletter = outputs.deadletter
        self.max_message_bytes = max_message_bytes
        self.clock = clock
        self.completeness = Completeness()
        self._out = EngineOutput()
        self._decoded: dict[bytes, tuple[bytes, SymbolState]] = {}  # key -> (table value, its state)

    def load_completeness(self, partition: int, values: Iterable[tuple[bytes, bytes]]) -> None:
        """Before the first message of a partition taken over: its symbols' states (table values)."""
        symbols = []
        for key, value in values:
            stored_partition, _, state_bytes = decode_stored(value)
            if stored_partition != partition:
                continue
            try:
                complete = SymbolState.from_bytes(state_bytes, self.cfg).complete_ms
            except Exception as exc:
                raise StateError(f"cannot restore the state of {key!r}: {exc}") from exc
            if complete is not None:
                symbols.append((key, complete))
        self.completeness.load(partition, symbols)

    def process(
        self, key: bytes | None, value: bytes | None, partition: int, offset: int, stored: bytes | None
    ) -> MessageResult:
        """Run one raw message (its key, value and position) against the symbol's stored table value."""
        raw = b"" if value is None else value
        names = parse_key(key)
        if isinstance(names, str):
            return self._dead(key, [Rejection(raw, names)], partition, offset)
        assert key is not None  # parse_key gives the reason for a missing key
        exchange, symbol = names
        state: SymbolState | None = None
        if stored is not None:
            last_partition, last_offset, state_bytes = decode_stored(stored)
            if last_partition == partition and offset <= last_offset:
                # Already applied before a crash or rebalance; its outputs were sent before the state.
                return MessageResult(skipped=True)
            # Taken out while this message changes it: a message that fails leaves none behind.
            decoded = self._decoded.pop(key, None)
            if decoded is not None and decoded[0] == stored:  # the same object compares at once
                state = decoded[1]
            else:
                try:
                    state = SymbolState.from_bytes(state_bytes, self.cfg)
                except Exception as exc:
                    raise StateError(f"cannot restore the state of {exchange}:{symbol}: {exc}") from exc

        out = self._out
        out.clear()
        rejected: list[Rejection] = []
        elements = applied = watermarks = 0
        rows_before = out.watermark_rows
        table_value = None
        if state is None and names_reason(exchange, symbol) is None:
            state = SymbolState(self.cfg, exchange, symbol)
        # The lane takes only the key's ticks: never into a stored state of other names.
        lane_state = state if state is not None and (state.exchange, state.symbol) == names else None
        engine, max_bytes = self.engine, self.max_message_bytes
        try:
            lines = batch_elements(raw)
            if isinstance(lines, Rejection):  # a value that is no batch: one element, refused
                rejected.append(lines)
                elements, lines = 1, []
            else:
                elements = len(lines)
            index = 0
            while index < len(lines):
                if lane_state is not None:
                    # The symbol's books, trades and tickers in one native call, up to a line it
                    # leaves (a watermark, an unusual or invalid tick): that one is decoded here.
                    index, taken, refused = engine.apply_lines_to(lane_state, lines, index, max_bytes, out)
                    applied += taken
                    rejected += [Rejection(lines[at], reason) for at, reason in refused]
                    if index >= len(lines):
                        break
                line = lines[index]
                index += 1
                item = decode_element(line, max_bytes)
                if isinstance(item, Rejection):
                    rejected.append(item)
                    continue
                element = item.watermark if isinstance(item, DecodedWatermark) else item.tick
                if element.exchange != exchange or element.symbol != symbol:
                    rejected.append(
                        Rejection(
                            item.raw,
                            f"key mismatch: element is for {element.exchange}:{element.symbol}, "
                            f"message key is {exchange}:{symbol}",
                        )
                    )
                    continue
                assert state is not None  # decoding refuses the names `names_reason` refused
                if isinstance(item, DecodedWatermark):
                    state.watermark(item.watermark.ts, out)
                    watermarks += 1
                    continue
                reason = engine.apply(state, item, out)
                if reason:
                    rejected.append(Rejection(item.raw, reason))
                else:
                    applied += 1
            if applied or watermarks:
                assert state is not None
                table_value = encode_stored(partition, offset, state.to_bytes())
                self._keep_decoded(key, table_value, state)
        except Exception as exc:
            # The batch's state change is discarded (the table keeps the previous value) and the
            # whole batch goes to dead-letter, so no input can stop the pipeline.
            out.clear()
            result = self._dead(
                key, [Rejection(raw, f"engine error: {type(exc).__name__}: {exc}")], partition, offset
            )
            result.elements = max(elements, 1)
            return result

        complete: Headers = []
        if state is not None and state.complete_ms is not None:
            complete = [complete_header(self.completeness.update(partition, key, state.complete_ms))]
        result = MessageResult(
            table_value=table_value,
            elements=elements,
            applied=applied,
            watermarks=watermarks,
            watermark_rows=out.watermark_rows - rows_before,
        )
        for table, topic in self.features:
            rows = list(getattr(out, table))  # HF rows become dicts here, for their JSON
            if rows:
                result.rows += len(rows)
                result.tables.append((table, len(rows), rows[-1]["ts"]))
                for index, chunk in enumerate(row_chunks(rows)):
                    headers = [*source_headers(partition, offset, index), *complete]
                    result.outgoing.append(Outgoing(topic, key, chunk, headers))
        out.clear()
        self._add_dead_letters(result, key, rejected, partition, offset)
        return result

    def _keep_decoded(self, key: bytes, table_value: bytes, state: SymbolState) -> None:
        decoded = self._decoded
        decoded.pop(key, None)  # re-inserted last: the most recently used
        decoded[key] = (table_value, state)
        if len(decoded) > DECODED_STATES:
            del decoded[next(iter(decoded))]  # the least recently used: each use re-inserts its symbol

    def _dead(
        self, key: bytes | None, rejections: list[Rejection], partition: int, offset: int
    ) -> MessageResult:
        result = MessageResult(elements=len(rejections))
        self._add_dead_letters(result, key, rejections, partition, offset)
        return result

    def _add_dead_letters(
        self,
        result: MessageResult,
        key: bytes | None,
        rejections: list[Rejection],
        partition: int,
        offset: int,
    ) -> None:
        if not rejections:
            return
        source = f"raw:{partition}@{offset}"
        now_ms = int(self.clock() * 1000)
        for index, rejection in enumerate(rejections):
            # At most a message's bytes: the whole value stays in the raw topic at `source`.
            record = dead_letter_record(
                rejection.reason, rejection.raw, source, now_ms, max_bytes=self.max_message_bytes
            )
            result.outgoing.append(
                Outgoing(
                    self.deadletter,
                    key,
                    record,
                    source_headers(partition, offset, index),
                )
            )
        result.rejected += len(rejections)
