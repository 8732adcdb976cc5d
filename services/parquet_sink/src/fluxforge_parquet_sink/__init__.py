"""FluxForge Parquet sink: Kafka topics -> the dataset, with exactly-once files.

What it consumes (`--tables`, `--raw`, `--deadletter`; all by default), as
one consumer group (`--group-id`, default `fluxforge-sink`) whose members
share the partitions:

- `<prefix>.features.<table>` -> `<table>/exchange=/symbol=/date=/<stem>.parquet`
  (rows grouped per dataset partition by `PartitionedParquetWriter`);
- `<prefix>.raw` -> `raw/exchange=/channel=/date=/<stem>.ndjson.zst`: every tick
  validation accepts, its original bytes stamped `"_ingest":[offset, index in
  batch]`, grouped by the UTC date of its event time; refused ticks are left to
  the feature engine, which dead-letters them;
- `<prefix>.deadletter` -> `deadletter/date=<date of logged_at_ms>/<stem>.ndjson`.

File names
    Each topic-partition's records are cut into chunks, and every file of a
    chunk is named `<topic>+<partition>+<first offset>-<last offset>` (20-digit
    offsets, inclusive; `naming.chunk_stem`), e.g.
    `fluxforge.features.hf+3+00000000000000000120-00000000000000000450.parquet`.
    The name says which records a file holds; the same records always give the
    same names and contents, so writing a chunk twice replaces its files.

Boundaries (deterministic)
    A chunk closes after the message that makes it reach its size bound
    (`parquet.flush_rows` feature rows, `raw_archive.segment_max_mb`
    uncompressed archive MiB, `deadletter.max_records`), and before a message
    whose event time lies its span (`sink.feature_span_s`,
    `raw_archive.segment_max_age_s`, `deadletter.max_span_s`; flags override
    most, see `options.HELP`) or more past the chunk's first event time - the
    rows' `ts`, the ticks' `ts`/`recv_ts`, `logged_at_ms`. Both are functions of
    the records from the chunk's first one on, never of the wall clock, of poll
    sizes, or of what other partitions do; so a sink that resumes at a chunk
    boundary cuts the same chunks again. Offsets need not be contiguous
    (transaction markers and aborted records occupy offsets that a
    read_committed consumer never sees): a chunk is named by the offsets of its
    first and last records, and the commit is `last + 1`. When a partition has
    no open chunk and its position lies past that (trailing markers), the
    position is committed, so the group's lag is 0 at the live edge.

Copies re-sent by the feature engine
    The engine is at-least-once: after a crash it re-runs raw messages and
    sends their outputs again, each with the header `ff-src: <raw partition>:
    <raw offset>:<index>` of the first send (`fluxforge_common.kafka.lineage`).
    On the feature and dead-letter topics the sink keeps, per (topic,
    partition, raw partition), the greatest (raw offset, index) taken, and
    drops every message at or below it before it reaches a chunk (counted as
    "re-sent engine outputs dropped"). A big output split by the engine into
    numbered chunks (same raw offset, index 0, 1, ...) is all kept. Messages
    without the header (the collector's dead letters) always pass; the raw
    topic is not deduplicated. The watermarks are committed with the offsets:
    every commit of a partition carries, as its Kafka offset-commit metadata,
    the watermarks of the records before that offset (`ff-src/1
    <raw partition>:<offset>:<index>,...`; a chunk closed by the span rule
    takes them before the record that starts the next chunk). When a
    partition is assigned, the committed offset and its metadata are read back
    in one OffsetFetch, so the restarted sink resumes with exactly the
    watermarks an uninterrupted one had at that offset: it drops the same
    copies - also those arriving after its restart whose originals are
    already in committed files - and, since the kept records are the same,
    cuts the same chunks. (Metadata it cannot read is logged and ignored.
    Kafka's default `offset.metadata.max.bytes`, 4096, holds the watermarks
    of ~200 raw partitions.)

Commit order and recovery
    For a closed chunk: (1) the recovery journal entry of its partition
    (`.sink/pending/<topic>+<partition>.json`: range and file list) is written,
    (2) the files are written, each atomically and fsynced (temp + rename),
    (3) `last + 1` is committed to Kafka, with the chunk's dedupe watermarks
    as metadata. Only then are the records done.
    When a partition is assigned (start, restart, rebalance), the journal entry
    is compared with the group's committed offset: if the commit does not cover
    it, its files (and temporaries a kill left) are deleted before the
    partition is read again from the committed offset. A crash between files
    and commit therefore ends with the same files (deterministic chunk: the
    replay rewrites the same names) or with the early chunk removed and
    re-cut (a chunk closed early by shutdown or idleness, or bounds changed
    between runs) - never with the records twice or missing.

Early closes and quiet partitions
    Two closes do not come from the records: a graceful stop (SIGTERM/SIGINT,
    or `--until-caught-up`) writes and commits every open chunk, and a chunk
    that received nothing for `--idle-flush-seconds` (default 120 s of wall
    clock; 0 = never) is written and committed, so a topic that went quiet
    still gets its last rows out. These only ever end a chunk at the live edge
    of a partition; the journal keeps them exactly-once. A rebalance writes
    nothing: revoked partitions drop their open chunk, and the next owner
    re-reads it from the committed offset (aiokafka's revoke callback waits
    for a chunk being written and committed; records polled before the
    rebalance are discarded).

Bad messages never stop the sink
    A feature message that is not a JSON array of rows, or whose rows have
    columns the table does not, or values that do not convert to the table's
    types (found when the Parquet file is made: the chunk is then rebuilt
    without it), is written as a dead-letter record (reason `sink: ...`, the
    original bytes, source `kafka:<topic>/<partition>@<offset>`) under
    `deadletter/date=<date of the Kafka timestamp>/<the chunk's stem>.ndjson`,
    so it is kept exactly once like everything else. An unreadable record on
    the dead-letter topic is wrapped the same way.

Memory
    Feature rows are held as dicts in the writer until their chunk closes
    (~7 KiB per HF row with the default config), so per partition at most
    `flush_rows` rows or `flush_seconds` of event time. Raw ticks are held as
    zstd frames of ~1 MiB of lines (about a tenth of the text), never one object
    per tick: the name of a raw file is known when its chunk closes, and
    buffering compressed bytes until then writes each file in one go (one PUT
    on S3) without needing a rename in `StorageBackend`.

Limits
    Kafka offers no fencing for files: a member that lost its group membership
    but has not noticed yet (a zombie, for up to a session timeout) can still
    write. For chunks closed by the bounds it writes the very files the new
    owner writes (same names, same content); an idle or shutdown chunk written
    by a zombie in that window can overlap the new owner's chunks (its commit
    fails and is logged as such). One dataset root takes one sink group per
    topic prefix.

Entry points: `fluxforge-parquet-sink` (`app.main`, argparse) and `fluxforge sink`
(typer, `src/fluxforge/cli/sink_cmd.py`), both over `options.SinkOptions`.
"""
