"""Column names and Arrow types of the output tables, derived from StateConfig.

One place defines every column, so the engine's rows, the Parquet schemas and
`fluxforge config check` cannot drift apart.
"""

from __future__ import annotations

import pyarrow as pa

from fluxforge_common.config.state import StateConfig, fmt_bps, fmt_window
from fluxforge_common.dataset.partitioning import PARQUET_TABLES
from fluxforge_common.dataset.schema import column_kinds

TS = pa.timestamp("ms", tz="UTC")
F64 = pa.float64()
I64 = pa.int64()
STR = pa.string()
BOOL = pa.bool_()
LEVELS = pa.list_(pa.list_(F64))

TABLES = PARQUET_TABLES  # the dataset's Parquet tables: the engine gives each its rows and schema

_KEYS: list[tuple[str, pa.DataType]] = [("exchange", STR), ("symbol", STR), ("ts", TS)]


def hf_fields(cfg: StateConfig) -> list[tuple[str, pa.DataType]]:
    levels = range(1, cfg.max_levels + 1)
    fields: list[tuple[str, pa.DataType]] = list(_KEYS)
    for side in ("bid", "ask"):
        fields += [(f"{side}_px_{i}", F64) for i in levels]
        fields += [(f"{side}_sz_{i}", F64) for i in levels]
    fields += [
        ("mid", F64),
        ("spread", F64),
        ("rel_spread", F64),
        ("microprice", F64),
        ("microprice_deviation", F64),
    ]
    fields += [(f"imbalance_l{i}", F64) for i in levels]
    for bps in cfg.bands_bps:
        fields += [(f"depth_bid_{fmt_bps(bps)}", F64), (f"depth_ask_{fmt_bps(bps)}", F64)]
    fields += [
        ("total_bid_volume", F64),
        ("total_ask_volume", F64),
        ("bid_levels", I64),
        ("ask_levels", I64),
        ("last_book_ts", TS),
        ("book_age_ms", I64),
        ("update_count", I64),
        ("trade_count", I64),
    ]
    fields += [(f"ofi_l{m}", F64) for m in range(1, cfg.ofi_levels + 1)]
    fields += [("mlofi", F64), ("log_return", F64), ("mid_velocity", F64), ("mid_acceleration", F64)]
    for h in cfg.horizons:
        w = fmt_window(h)
        fields += [(f"rv_{w}", F64), (f"ofi_cum_{w}", F64), (f"tfi_{w}", F64), (f"trade_volume_{w}", F64)]
    w = fmt_window(cfg.regime_window)
    fields += [(f"depth_var_{w}", F64), (f"tight_spread_frac_{w}", F64)]
    fields += [("hour", I64), ("minute", I64), ("day_of_week", I64), ("is_weekend", BOOL)]
    if cfg.keep_raw_arrays:
        fields += [("bids_raw", LEVELS), ("asks_raw", LEVELS)]
    return fields


def hf_cell_kinds(cfg: StateConfig) -> list[tuple[str, str]]:
    """The native kinds (`column_kinds`) of the HF columns an HF row holds as cells: all but the
    raw book sides, which are lists (`fluxforge_native.HfColumns`)."""
    kinds = column_kinds(pa.schema([(name, typ) for name, typ in hf_fields(cfg) if typ != LEVELS]))
    assert kinds is not None, "every HF column but the raw sides is a plain value"
    return kinds


BAR_FIELDS: list[tuple[str, pa.DataType]] = [
    *_KEYS,
    ("duration_s", I64),
    ("open", F64),
    ("high", F64),
    ("low", F64),
    ("close", F64),
    ("count", I64),
    ("mean_spread", F64),
    ("min_spread", F64),
    ("max_spread", F64),
    ("mean_rel_spread", F64),
    ("mean_imbalance_l1", F64),
    ("sum_ofi", F64),
    ("realized_var", F64),
    ("trade_count", I64),
    ("trade_volume", F64),
    ("vwap", F64),
]

TRADE_FIELDS: list[tuple[str, pa.DataType]] = [
    *_KEYS,
    ("recv_ts", TS),
    ("id", STR),
    ("price", F64),
    ("amount", F64),
    ("side", STR),
    ("sign", I64),
    ("notional", F64),
    ("signed_amount", F64),
    ("best_bid_before", F64),
    ("best_ask_before", F64),
    ("mid_before", F64),
    ("spread_before", F64),
    ("trade_vs_mid_bps", F64),
    ("effective_spread_bps", F64),
    ("price_position", STR),
    ("depth_at_price", F64),
    ("latency_ms", I64),
    ("ms_since_prev_trade", I64),
]

TICKER_FIELDS: list[tuple[str, pa.DataType]] = [
    *_KEYS,
    ("recv_ts", TS),
    ("bid", F64),
    ("ask", F64),
    ("bid_size", F64),
    ("ask_size", F64),
    ("last", F64),
    ("base_volume", F64),
    ("quote_volume", F64),
    ("mid", F64),
    ("spread", F64),
    ("rel_spread", F64),
    ("latency_ms", I64),
]


IBAR_FIELDS: list[tuple[str, pa.DataType]] = [
    *_KEYS,
    ("end_ts", TS),
    ("kind", STR),
    ("threshold", F64),
    ("expected_ticks", F64),
    ("expected_imbalance", F64),
    ("open", F64),
    ("high", F64),
    ("low", F64),
    ("close", F64),
    ("tick_count", I64),
    ("volume", F64),
    ("dollar_value", F64),
    ("buy_volume", F64),
    ("sell_volume", F64),
    ("imbalance", I64),
    ("vwap", F64),
]

_FIXED_FIELDS = {"bars": BAR_FIELDS, "trades": TRADE_FIELDS, "ticker": TICKER_FIELDS, "ibars": IBAR_FIELDS}


def output_tables(cfg: StateConfig) -> tuple[str, ...]:
    """The tables `cfg` gives rows: all but `ibars` unless information-driven bars are configured."""
    unfilled = cfg.unfilled_tables
    return tuple(t for t in TABLES if t not in unfilled)


def table_fields(table: str, cfg: StateConfig) -> list[tuple[str, pa.DataType]]:
    if table == "hf":
        return hf_fields(cfg)
    fields = _FIXED_FIELDS.get(table)
    if fields is not None:
        return fields
    raise ValueError(f"unknown table {table!r}; expected one of {', '.join(TABLES)}")


def table_schema(table: str, cfg: StateConfig) -> pa.Schema:
    return pa.schema(
        [
            pa.field(name, typ, nullable=name not in ("exchange", "symbol", "ts"))
            for name, typ in table_fields(table, cfg)
        ]
    )
