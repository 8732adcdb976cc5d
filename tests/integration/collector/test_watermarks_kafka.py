"""A symbol that goes silent in a live-paced run gets its rows from the collector's watermarks.

8 s of simulated market are published in real time (`--speed 1`); binanceus BTC/USDT stops
after 3 s. The raw topic is read back and run through the feature engine's message processor
in log order. BTC/USDT's carried-forward HF rows for every grid point after its last tick come
within two `hf_emit_interval`s plus the watermark period (the quiet period) of wall time after
the exchange's time passed them (Kafka create times); every other symbol's rows equal those of
the same input without watermarks (the in-process engine, end of input included).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fluxforge_collector.launch import CollectOptions, make_collector, publish
from fluxforge_common.features import closing_watermark
from fluxforge_common.kafka import TopicNames
from fluxforge_common.messages.rows import decode_rows
from fluxforge_feature_engine.processor import MessageProcessor

from tests.support.feature_engine import expected_rows
from tests.support.stack_data import simulated_lines
from tests.support.ticks import event_ms

if TYPE_CHECKING:
    from tests.support.kafka import KafkaPrefix

pytestmark = pytest.mark.integration

SILENT = b"binanceus:BTC/USDT"
SILENT_AFTER_MS = 3_000


def silent(line: bytes) -> bool:
    return b'"exchange":"binanceus","symbol":"BTC/USDT"' in line


def test_a_symbol_silent_in_a_live_run_gets_its_rows_and_the_others_are_untouched(
    kafka_prefix: KafkaPrefix, tmp_path: Path
) -> None:
    market = simulated_lines(8.0, seed=5)
    start = event_ms(market[0])
    lines = [line for line in market if not silent(line) or event_ms(line) < start + SILENT_AFTER_MS]
    assert len(lines) < len(market)
    path = tmp_path / "market.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    settings = kafka_prefix.settings()
    features = settings.features
    interval = features.interval_ms
    quiet_ms = interval  # collector.watermark_quiet_s defaults to one hf_emit_interval

    stats = publish(make_collector(settings, CollectOptions(input=str(path), speed=1.0)), settings)
    names = TopicNames.from_config(settings.kafka)
    records = sorted(kafka_prefix.read(names.raw), key=lambda r: (r.partition, r.offset))
    assert stats.ticks_out == len(lines)

    processor = MessageProcessor(features, names)
    table: dict[bytes, bytes] = {}
    rows: dict[str, dict[bytes, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    hf_made_at: dict[int, int] = {}  # silent symbol's grid point -> create time of the message that closed it
    for record in records:
        assert record.key is not None
        result = processor.process(
            record.key, record.value, record.partition, record.offset, table.get(record.key)
        )
        if result.table_value is not None:
            table[record.key] = result.table_value
        for out in result.outgoing:
            table_name = names.table_of(out.topic)
            assert table_name is not None, out.topic
            got = decode_rows(out.value)
            rows[table_name][record.key] += got
            if record.key == SILENT and table_name == "hf":
                hf_made_at.update({row["ts"]: record.timestamp for row in got})

    last_interval = closing_watermark(max(event_ms(line) for line in lines if silent(line)), interval)
    quiet_rows = [t for t in sorted(hf_made_at) if t > last_interval]
    binance = [r for r in records if r.key is not None and r.key.startswith(b"binanceus:")]
    assert len(quiet_rows) >= 3, sorted(hf_made_at)  # ~5 s of silence
    for t in quiet_rows:
        # When the exchange's time (as published, any binanceus symbol) first passed t.
        passed = min(r.timestamp for r in binance if any(event_ms(tick) >= t for tick in r.ticks()))
        delay = hf_made_at[t] - passed
        assert delay <= 2 * interval + quiet_ms, (t, delay)
        print(f"  row at +{t - start} ms: {delay} ms of wall time after the exchange passed it")
    carried = [row for row in rows["hf"][SILENT] if row["ts"] in quiet_rows]
    assert {row["update_count"] for row in carried} == {0}
    assert len({row["mid"] for row in carried}) == 1

    # Every symbol's rows as without watermarks (ends of input included); the silent one's too, up
    # to its last interval, then only its carried-forward rows.
    expected, rejected = expected_rows(lines, features, flush=True)
    assert rejected == []
    for table_name, by_key in expected.items():
        for key, want in by_key.items():
            got = rows[table_name][key.encode()]
            if key.encode() == SILENT:
                got = [row for row in got if row["ts"] + row.get("duration_s", 0) * 1000 <= last_interval]
            assert got == want, (table_name, key)
