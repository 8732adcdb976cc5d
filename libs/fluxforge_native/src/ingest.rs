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

/// Whether `raw` holds `"_ingest"`: looked for at each `_`, which is rare in an envelope, found
/// eight bytes a step (a byte-wise search, Python's `in` included, costs more than the stamp).
fn holds_ingest(raw: &[u8]) -> bool {
    let at = |i: usize| raw[i] == b'_' && i > 0 && raw[i - 1] == b'"' && raw[i..].starts_with(b"_ingest\"");
    let mut chunks = raw.chunks_exact(8);
    for (k, chunk) in chunks.by_ref().enumerate() {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes")) ^ 0x5F5F_5F5F_5F5F_5F5F;
        let underscore = word.wrapping_sub(0x0101_0101_0101_0101) & !word & 0x8080_8080_8080_8080 != 0;
        if underscore && (k * 8..k * 8 + 8).any(at) {
            return true;
        }
    }
    let rest = raw.len() - chunks.remainder().len();
    (rest..raw.len()).any(at)
}

/// `raw`, one JSON object, with `"_ingest":[session,n]` added as its last field (the whitespace
/// around the object dropped); None where it holds `"_ingest"` already, an earlier stamp the
/// caller replaces.
#[pyfunction]
pub fn with_ingest<'py>(
    py: Python<'py>,
    raw: &[u8],
    session: i64,
    n: i64,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    if holds_ingest(raw) {
        return Ok(None);
    }
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
    Ok(Some(PyBytes::new_bound(py, &line)))
}
