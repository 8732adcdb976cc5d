//! The ingest stamp of an archived line (`fluxforge_common.pipeline.ingest_order`): made in one
//! allocation, as it is added to every accepted tick the archive keeps, and read back without a
//! regular expression, as every line a reprocess merges is sorted by it.

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

const KEY: &[u8] = b"\"_ingest\":[";
/// A stamp sits at the end of the line it was added to: looked for in this many last bytes first.
const TAIL: usize = 64;

/// The digits of `[0-9]+,[0-9]+]` at the start of `rest`.
fn key_digits(rest: &[u8]) -> Option<(&[u8], &[u8])> {
    let session = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if session == 0 || rest.get(session) != Some(&b',') {
        return None;
    }
    let after = &rest[session + 1..];
    let n = after.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 || after.get(n) != Some(&b']') {
        return None;
    }
    Some((&rest[..session], &after[..n]))
}

/// The first `"_ingest":[session,n]` that starts at or after `from`.
fn first_key(line: &[u8], from: usize) -> Option<(&[u8], &[u8])> {
    (from..line.len().saturating_sub(KEY.len() - 1))
        .filter(|&i| line[i..].starts_with(KEY))
        .find_map(|i| key_digits(&line[i + KEY.len()..]))
}

/// ASCII decimal digits as a u64, where one holds them.
pub(crate) fn digits_u64(digits: &[u8]) -> Option<u64> {
    digits
        .iter()
        .try_fold(0u64, |value, &d| value.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// Decimal digits as a Python int: a machine integer when they fit one, else Python's `int`.
fn int_of(py: Python<'_>, digits: &[u8]) -> PyResult<PyObject> {
    match digits_u64(digits) {
        Some(value) => Ok(value.into_py(py)),
        None => {
            let text = std::str::from_utf8(digits).expect("ASCII digits");
            Ok(py.get_type_bound::<pyo3::types::PyLong>().call1((text,))?.unbind())
        }
    }
}

/// The digits of the (session, n) of an archived line: the first `"_ingest":[session,n]` in its
/// last 64 bytes, else the first anywhere; None for a line without one.
pub(crate) fn ingest_digits(line: &[u8]) -> Option<(&[u8], &[u8])> {
    first_key(line, line.len().saturating_sub(TAIL)).or_else(|| first_key(line, 0))
}

/// The (session, n) of an archived line (`fluxforge_common.pipeline.ingest_order`, `ingest_digits`);
/// (0, 0) for a line without one, which sorts first.
#[pyfunction]
pub fn ingest_key(py: Python<'_>, line: &[u8]) -> PyResult<(PyObject, PyObject)> {
    match ingest_digits(line) {
        Some((session, n)) => Ok((int_of(py, session)?, int_of(py, n)?)),
        None => Ok((0.into_py(py), 0.into_py(py))),
    }
}
