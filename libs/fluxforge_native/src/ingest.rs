//! The ingest stamp of an archived line (`fluxforge_common.pipeline.ingest_order`), made in one
//! allocation: it is added to every accepted tick the archive keeps.

use std::io::Write;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// What Python's `bytes.strip()` removes: ASCII space, tab, line feed, carriage return, vertical
/// tab and form feed.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

/// `raw`, one JSON object without an `_ingest` field, with `"_ingest":[session,n]` added as its
/// last field (the whitespace around the object dropped).
#[pyfunction]
pub fn with_ingest<'py>(py: Python<'py>, raw: &[u8], session: i64, n: i64) -> PyResult<Bound<'py, PyBytes>> {
    let start = raw.iter().position(|&b| !is_space(b)).unwrap_or(raw.len());
    let end = raw.iter().rposition(|&b| !is_space(b)).map_or(start, |last| last + 1);
    let object = &raw[start..end];
    let mut line = Vec::with_capacity(object.len() + 48);
    if object == b"{}" {
        line.extend_from_slice(b"{");
    } else {
        line.extend_from_slice(&object[..object.len().saturating_sub(1)]);
        line.extend_from_slice(b",");
    }
    write!(line, "\"_ingest\":[{session},{n}]}}")?;
    Ok(PyBytes::new_bound(py, &line))
}
