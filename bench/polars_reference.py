"""The yardstick of the issue: a plain Polars batch job over the reference input.

Parses the NDJSON file, keeps the books, computes L1 mid, spread, microprice,
imbalance and order-flow imbalance per update, takes them on a 1 s grid per
symbol (last value, OFI summed) and writes one Parquet file: a tenth of what
`fluxforge run --input` computes, as a notebook would. `python -m
bench.polars_reference IN OUT` runs it (Polars threads from POLARS_MAX_THREADS).
"""

from __future__ import annotations

import sys

import polars as pl


def l1_features(path: str) -> pl.DataFrame:
    bid, ask = pl.col("bids").list.first(), pl.col("asks").list.first()
    books = (
        pl.read_ndjson(path, infer_schema_length=None)
        .filter(pl.col("type") == "book")
        .select(
            "exchange",
            "symbol",
            pl.coalesce("ts", "recv_ts").alias("ts"),
            bid.list.get(0).alias("pb"),
            bid.list.get(1).alias("qb"),
            ask.list.get(0).alias("pa"),
            ask.list.get(1).alias("qa"),
        )
    )
    keys = ["exchange", "symbol"]
    prev = {name: pl.col(name).shift(1).over(keys) for name in ("pb", "qb", "pa", "qa")}
    e_bid = (
        pl.when(pl.col("pb") > prev["pb"])
        .then(pl.col("qb"))
        .when(pl.col("pb") == prev["pb"])
        .then(pl.col("qb") - prev["qb"])
        .otherwise(-prev["qb"])
    )
    e_ask = (
        pl.when(pl.col("pa") < prev["pa"])
        .then(pl.col("qa"))
        .when(pl.col("pa") == prev["pa"])
        .then(pl.col("qa") - prev["qa"])
        .otherwise(-prev["qa"])
    )
    return (
        books.with_columns(
            mid=(pl.col("pb") + pl.col("pa")) / 2,
            spread=pl.col("pa") - pl.col("pb"),
            microprice=(pl.col("qb") * pl.col("pa") + pl.col("qa") * pl.col("pb"))
            / (pl.col("qb") + pl.col("qa")),
            imbalance=(pl.col("qb") - pl.col("qa")) / (pl.col("qb") + pl.col("qa")),
            ofi=(e_bid - e_ask).fill_null(0.0),
            grid=(pl.col("ts") // 1000 + 1) * 1000,
        )
        .group_by([*keys, "grid"], maintain_order=True)
        .agg(
            pl.col("mid", "spread", "microprice", "imbalance").last(),
            pl.col("ofi").sum(),
            pl.len().alias("update_count"),
        )
        .sort([*keys, "grid"])
    )


if __name__ == "__main__":
    l1_features(sys.argv[1]).write_parquet(sys.argv[2], compression="zstd")
