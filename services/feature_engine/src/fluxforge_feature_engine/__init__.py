"""FluxForge feature engine service: the shared engine over Kafka, as a faust-streaming app.

One agent reads the raw topic (`<prefix>.raw`, key `<exchange>:<symbol>`, value a
JSON array of that symbol's raw envelopes). Each symbol's `SymbolState` lives
in a Faust table (memory store) backed by the compacted changelog
`<app-id>-symbol-state-changelog`, which has the raw topic's partition count
and is replayed on start and on rebalance. For every raw message and every
table with rows it sends one message (key = the raw key, value = `encode_rows`)
to `<output-prefix>.features.<table>`; every rejected element, message or
batch goes to `<output-prefix>.deadletter` as a `dead_letter_record` with
`source="raw:<partition>@<offset>"`. Several workers of one `--app-id` share
the raw partitions (one consumer group); a new app id is a new group and a new
changelog, so a topic can be reprocessed from the start beside the live one.

Processing guarantee: effectively once, without Kafka transactions
------------------------------------------------------------------
faust-streaming 0.15.3's ``processing_guarantee="exactly_once"`` does not make
this app's output atomic with its state and offsets (read in its source and
checked against a broker):

1. `TransactionManager.send` picks the transactional producer by the partition
   of the *destination* topic in the consumer's metadata. For a topic the app
   does not consume (our feature and dead-letter topics) there is none, and
   the record goes to the plain producer, outside any transaction: rows were
   visible to a read_committed consumer while the changelog records of the
   same events were still in an open transaction (faust-streaming#177). After
   a crash the events are re-run and the rows sent again; read_committed does
   not hide those copies. (A destination that is in the metadata but not in
   the assignor's topic groups raises KeyError instead, faust-streaming#440.)
2. Table writes wait in Faust's `ProducerBuffer` (`send_soon`), and the
   exactly-once commit path (`Consumer._commit_offsets`) does not flush it
   before `send_offsets_to_transaction` + commit: offsets can commit in a
   transaction without the changelog records of the events they cover, and a
   crash then loses those state updates.
3. Failures of begin/commit/abort of a transaction are logged and swallowed.

So the worker runs ``at_least_once`` and gets the end result of exactly-once
from three properties instead:

- **The state records what it has applied.** A table value is the symbol's
  `SymbolState` bytes plus the raw (partition, offset) of the last message
  applied to it (`processor.encode_stored`). A message at or below that offset
  is skipped.
- **Outputs become durable before the state that follows them.** Per batch
  (up to 64 raw messages, or what arrived within 10 ms): compute everything,
  send all outputs, wait until Kafka has acknowledged every one, and only then
  write the new table values (one changelog record per symbol per batch).
  Faust acknowledges the batch's events after that, and its periodic commit
  flushes the producer (changelog records included) before committing offsets.
- **Outputs are deterministic and say where they come from.** The engine is a
  pure function of (state, raw message), the state round-trips through bytes
  exactly, and every output carries the header
  ``ff-src: <raw partition>:<raw offset>:<index>``. A re-run of a message sends
  byte-identical feature messages with the same header (dead-letter records
  differ only in `logged_at_ms`).

What a `kill -9` does, by where it lands in a batch:

- before every output is acknowledged: no state of the batch was written and no
  offset committed; the restarted worker (or the partition's new owner)
  recovers the table from the changelog, re-reads from the committed offset and
  re-runs the batch from the same state, producing the same outputs; copies of
  those that had reached Kafka are dropped by readers (below);
- after the outputs, before or during the state writes: symbols whose record
  did not land re-run as above; for symbols whose record landed, the re-read
  messages are at or below the stored offset and are skipped, and their
  outputs are in Kafka already (they were acknowledged first);
- after the state writes, before the offset commit: everything re-read is
  skipped (or re-run into copies, as above);
- after the commit: nothing is re-read.

In every case the distinct outputs are exactly those of an uninterrupted run,
each at least once. A reader that must see them once (the Parquet sink) keeps,
per (output topic, output partition, raw partition), the greatest
(offset, index) it has taken and drops anything at or below it
(`lineage.Deduplicator`); within an output partition one raw partition's
messages are always written by one worker, in raw-offset order, so a copy is
never above the watermark and a new message never below it. The reader should
persist the watermarks with its own committed offsets (e.g. as offset-commit
metadata) to also recognise a copy that arrives after its own restart.

Rebalances: Faust's revoke handler waits until the events in flight are
acknowledged (our batch finishes: outputs acknowledged, state written), flushes
the producer and commits before the partitions move; the new owner recovers
the table from the changelog and goes on from the committed offset. A worker
that misses its rebalance deadline is the crash case above.

Latency does not depend on commits: rows are sent as soon as they are computed
(a raw message waits at most 10 ms for its batch); `--commit-interval` only
bounds how much input a restart re-reads.

Bad input never stops the pipeline: undecodable batches and elements, elements
of another symbol than the message key, messages without a usable key, late and
duplicate ticks, and any unexpected engine exception for a batch (whose state
change is then discarded and whose whole value is dead-lettered with the
exception text) all go to the dead-letter topic. A stored state that cannot be
restored (another feature config, another state format) stops the worker
instead: every message of the symbol would fail alike; reprocess under a new
`--app-id`.
"""
