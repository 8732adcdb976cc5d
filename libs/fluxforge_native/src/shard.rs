//! The hash a reprocess shard keeps a raw line by (`fluxforge_common.pipeline.shards`): every
//! shard reads the whole archive and hashes every line, so the common line is read here, only as
//! far as its symbol.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::json::Reader;

/// zlib's crc32 of `exchange:symbol` of a raw line: its top-level object's `"exchange"` and
/// `"symbol"`, read as far as both, plain strings under plain keys. None for any other line, and
/// for one whose rest holds a backslash or either key's quoted name again (a later copy of a key,
/// which a full decode takes instead): the caller decodes those in full. Where this answers, a
/// full decode of a line it accepts gives the same hash.
#[pyfunction]
pub fn symbol_crc32(line: &[u8]) -> Option<u32> {
    let mut reader = Reader::new(line);
    if !reader.eat(b'{') {
        return None;
    }
    let (mut exchange, mut symbol) = (None, None);
    while exchange.is_none() || symbol.is_none() {
        let name = reader.plain_bytes()?;
        if !reader.eat(b':') {
            return None;
        }
        match name {
            b"exchange" if exchange.is_none() => exchange = Some(reader.plain_string()?),
            b"symbol" if symbol.is_none() => symbol = Some(reader.plain_string()?),
            b"exchange" | b"symbol" => return None,
            _ if reader.skip_value() => {}
            _ => return None,
        }
        if !reader.eat(b',') && !(reader.eat(b'}') && exchange.is_some() && symbol.is_some()) {
            return None;
        }
    }
    let rest = &line[reader.at..];
    let mut at = 0;
    while let Some(i) = next_quote_or_escape(&rest[at..]) {
        let i = at + i;
        let after = &rest[i + 1..];
        if rest[i] == b'\\' || after.starts_with(b"exchange\"") || after.starts_with(b"symbol\"") {
            return None;
        }
        at = i + 1;
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(exchange?.as_bytes());
    hasher.update(b":");
    hasher.update(symbol?.as_bytes());
    Some(hasher.finalize())
}

/// The lines of `block` (split at `\n`, empty ones left out) that shard `index` of `count` may
/// keep, and the places among them of those `symbol_crc32` could not hash, which the caller
/// decides with a full decode. A shard drops the other shards' lines here, in one call a block,
/// without a Python object each.
#[pyfunction]
pub fn shard_lines<'py>(
    py: Python<'py>,
    block: &[u8],
    count: u32,
    index: u32,
) -> PyResult<(Vec<Bound<'py, PyBytes>>, Vec<usize>)> {
    if index >= count {
        return Err(PyValueError::new_err(format!("shard {index} of {count} does not exist")));
    }
    let (mut kept, mut undecided) = (Vec::new(), Vec::new());
    for line in block.split(|&byte| byte == b'\n').filter(|line| !line.is_empty()) {
        match symbol_crc32(line) {
            Some(crc) if crc % count != index => continue,
            Some(_) => {}
            None => undecided.push(kept.len()),
        }
        kept.push(PyBytes::new_bound(py, line));
    }
    Ok((kept, undecided))
}

/// Where the first `"` or `\\` of `bytes` is, looked for eight bytes a step: a book's levels,
/// most of a line, hold neither.
fn next_quote_or_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let holds = |word: u64, byte: u8| {
        let found = word ^ (ONES * u64::from(byte));
        found.wrapping_sub(ONES) & !found & HIGHS != 0
    };
    let wanted = |byte: &u8| matches!(byte, b'"' | b'\\');
    let mut chunks = bytes.chunks_exact(8);
    for (k, chunk) in chunks.by_ref().enumerate() {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        if holds(word, b'"') || holds(word, b'\\') {
            return chunk.iter().position(wanted).map(|i| k * 8 + i);
        }
    }
    let done = bytes.len() - chunks.remainder().len();
    chunks.remainder().iter().position(wanted).map(|i| done + i)
}
