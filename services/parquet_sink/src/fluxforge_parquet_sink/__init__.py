"""FluxForge Parquet sink: Kafka topics -> the dataset, with exactly-once files.

It consumes `<prefix>.features.<table>`, `<prefix>.raw` and `<prefix>.deadletter`
(`--tables`, `--raw`, `--deadletter`) as one consumer group and writes them to
the layout of docs/design.md "Dataset layout". How files stay exactly-once
(deterministic chunks named by offsets, dedupe positions in the commit
metadata, the recovery journal, and the limit of that) is in "Delivery
guarantees".

Memory: feature rows are held as dicts until their chunk closes (~7 KiB per HF
row with the default config, so per partition at most the chunk's row or span
bound); raw ticks are held as ~1 MiB zstd frames, because a raw file's name is
known only when its chunk closes and writing it in one go needs no rename.
"""
