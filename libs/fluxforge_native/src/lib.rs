//! The per-update book work of FluxForge's feature engine, in Rust: a book's levels go from
//! JSON bytes to machine floats without a Python object per level, each tick of a symbol is
//! taken in event-time order (lateness, repeats, the hold), each book update folds into
//! its interval's flows in place, closed intervals roll through windows with exact sums, and an
//! HF row's book columns are written from the book as it stands.
//! Output rows go into Arrow columns as the writers buffer them (the sink's feature messages
//! straight from their JSON), and archived lines get their ingest stamp and find their segment
//! here. The rest of the engine is Python (`fluxforge_common.features`).

use pyo3::prelude::*;

mod archive;
mod bars;
mod book;
mod tick_lane;
mod tickers;
mod columns;
mod envelope;
mod flows;
mod hf_rows;
mod ingest;
mod interval_columns;
mod json;
mod levels;
mod merge;
mod parquet_file;
mod rows;
mod shard;
mod snapshot;
mod symbol_core;
mod trades;
mod windows;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<levels::Levels>()?;
    m.add_class::<flows::IntervalFlows>()?;
    m.add_class::<bars::TimeBars>()?;
    m.add_class::<book::BookDecoder>()?;
    m.add_class::<tick_lane::TickLane>()?;
    m.add_class::<windows::RollingWindows>()?;
    m.add_class::<columns::ColumnBuffer>()?;
    m.add_class::<rows::RowReader>()?;
    m.add_class::<rows::ReadRows>()?;
    m.add_class::<hf_rows::HfColumns>()?;
    m.add_class::<hf_rows::HfRows>()?;
    m.add_class::<archive::PendingLines>()?;
    m.add_class::<merge::IngestMerge>()?;
    m.add_class::<symbol_core::SymbolCore>()?;
    m.add("RECENT_TRADE_IDS", symbol_core::RECENT_TRADE_IDS)?;
    m.add("RECEIVE_CLOCK_LEAD_MS", symbol_core::RECEIVE_CLOCK_LEAD_MS)?;
    m.add_function(wrap_pyfunction!(levels::book_ok, m)?)?;
    m.add_function(wrap_pyfunction!(ingest::with_ingest, m)?)?;
    m.add_function(wrap_pyfunction!(ingest::ingest_key, m)?)?;
    m.add_function(wrap_pyfunction!(shard::symbol_crc32, m)?)?;
    m.add_function(wrap_pyfunction!(shard::shard_lines, m)?)?;
    m.add_function(wrap_pyfunction!(trades::trade_row, m)?)?;
    m.add_class::<parquet_file::ParquetEncoder>()?;
    Ok(())
}
