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
- **Outputs become durable before the state that follows them.** The engine
  runs on each raw message as it arrives and its outputs go to the producer at
  once. A flush (when 64 messages wait, when the oldest has waited 10 ms, and
  before partitions are revoked) waits until Kafka has acknowledged every
  output of the messages it covers, only then writes each symbol's newest
  state to the table (one changelog record per symbol per flush), and only then
  acknowledges the messages to Faust, whose periodic commit flushes the producer
  (changelog records included) before committing their offsets.
- **Outputs are deterministic and say where they come from.** The engine is a
  pure function of (state, raw message), the state round-trips through bytes
  exactly, and every output carries the header
  ``ff-src: <raw partition>:<raw offset>:<index>``. A re-run of a message sends
  byte-identical feature messages with the same header (dead-letter records
  differ only in `logged_at_ms`).

What a `kill -9` does, by where it lands relative to a flush:

- before every output is acknowledged: no state of the batch was written and no
  offset committed; the restarted worker (or the partition's new owner)
  recovers the table from the changelog, re-reads from the committed offset and
  re-runs those messages from the same states, producing the same outputs; copies of
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
(`fluxforge_common.kafka.lineage.Deduplicator`); within an output partition
one raw partition's messages are always written by one worker, in raw-offset
order, so a copy is never above the watermark and a new message never below
it. The sink persists the watermarks as the metadata of its own committed
offsets, so it also recognises a copy that arrives after its own restart.

Rebalances: before a worker lets its partitions go, it flushes (outputs,
states, acks), waits for the producer and forgets its unwritten-state overlay;
the partition's next owner, or the same worker re-reading the changelog of a
partition it keeps (Faust's memory store replays every assigned changelog
partition after each rebalance), finds every state computed so far and
continues from the committed offset, skipping what those states already
contain. Faust hands the agent no events while it recovers tables, and drops
events fetched under an earlier group generation. (Faust's `take_events` is
not used: its private buffer delivers such stale events after a rebalance,
and a kept partition's replay then overwrote newer states, caught by the
two-worker test.) Two races of faust-streaming with aiokafka at the end of a
rebalance lost raw messages; the patches in `compat` close them.
A worker killed or cut off mid-rebalance is the crash case above; its
partitions move on after the 10 s session timeout.

Latency does not depend on commits: rows are sent as soon as they are computed;
`--commit-interval` (default 1 s) only bounds how much input a restart re-reads.
Measured on the 2-core dev machine with the broker beside it
(`bench/feature_engine.py`, several runs): 45,000-57,000 raw ticks/s through
one worker (batches of 100 ticks); end to end from collector `recv_ts` to the
HF row in a read_committed consumer, p50 ~50 ms and p99 70-125 ms with a live
market of 2,000 ticks/s batched like the collector (100 ticks / 50 ms).

Bad input never stops the pipeline: undecodable batches and elements, elements
of another symbol than the message key, messages without a usable key, late and
duplicate ticks, and any unexpected engine exception for a batch (whose state
change is then discarded and whose whole value is dead-lettered with the
exception text) all go to the dead-letter topic. A stored state that cannot be
restored (another feature config, another state format) stops the worker
instead: every message of the symbol would fail alike; reprocess under a new
`--app-id`.

Limits: a feature message whose rows exceed ~512 KiB (a long quiet stretch
emits many grid rows at once) is split into consecutive chunks, numbered by the
`ff-src` index; a dead-letter record keeps at most 256 KiB of the original bytes
(the rest stays in the raw topic at the offset its `source` names); the raw
topic is read as Faust's at-least-once consumer does (read_uncommitted), so a
raw producer using transactions would have its aborted batches processed too
(the collector does not use transactions).
"""
