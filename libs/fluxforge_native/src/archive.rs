//! The raw archive's per-line work (`fluxforge_common.writers.ndjson.RawArchiveWriter`): which
//! open segment a line belongs to, whether the segment's bounds let it in, and the lines each
//! segment has not written as a frame yet. Every accepted tick passes here, and the same steps
//! in Python cost several times the line's decoding; opening, cutting and closing segments stay
//! in Python, which this only tells when one is due.

use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

const MS_PER_DAY: i64 = 86_400_000;

/// What `append` did: the line was added (and whether its segment's lines now fill a frame), or
/// why it was not, which the caller mends before it appends the line again.
const APPENDED: u8 = 0;
const FRAME_FULL: u8 = 1;
const EXPIRED: u8 = 2;
const NOT_OPEN: u8 = 3;
const SEGMENT_FULL: u8 = 4;

/// A segment's key as the writer names it: exchange, channel, UTC date.
type Key = (String, String, String);

struct Segment {
    key: Key,
    day: i64,
    opened_ms: i64,
    pending: Vec<u8>,
    size: u64,
    lines: u64,
}

impl Segment {
    fn holds(&self, exchange: &str, channel: &str, day: i64) -> bool {
        self.day == day && self.key.1 == channel && self.key.0 == exchange
    }
}

/// The open segments of one archive writer and their pending lines (see the module's text).
/// The bounds are the writer's: none for a writer whose segments are named on close.
#[pyclass(module = "fluxforge_native")]
pub struct PendingLines {
    segments: Vec<Segment>,
    max_bytes: Option<u64>,
    max_age_ms: Option<i64>,
    frame_bytes: usize,
    oldest_ms: Option<i64>,
}

impl PendingLines {
    fn index(&self, key: &Key) -> PyResult<usize> {
        self.segments
            .iter()
            .position(|s| s.key == *key)
            .ok_or_else(|| PyKeyError::new_err(format!("no open segment {key:?}")))
    }

    fn update_oldest(&mut self) {
        self.oldest_ms = self.segments.iter().map(|s| s.opened_ms).min();
    }
}

#[pymethods]
impl PendingLines {
    #[new]
    #[pyo3(signature = (segment_max_bytes, segment_max_age_ms, frame_bytes))]
    fn new(segment_max_bytes: Option<u64>, segment_max_age_ms: Option<i64>, frame_bytes: usize) -> Self {
        PendingLines {
            segments: Vec::new(),
            max_bytes: segment_max_bytes,
            max_age_ms: segment_max_age_ms,
            frame_bytes,
            oldest_ms: None,
        }
    }

    #[classattr]
    const APPENDED: u8 = APPENDED;
    #[classattr]
    const FRAME_FULL: u8 = FRAME_FULL;
    #[classattr]
    const EXPIRED: u8 = EXPIRED;
    #[classattr]
    const NOT_OPEN: u8 = NOT_OPEN;
    #[classattr]
    const SEGMENT_FULL: u8 = SEGMENT_FULL;

    /// Add `line` and its newline to the segment of (exchange, channel, UTC date of `ts_ms`), in
    /// the writer's order of checks: first whether `ts_ms` makes an open segment too old, then
    /// whether the segment is open, then whether the line would take it past its size (a
    /// segment's first line always fits, however long).
    fn append(&mut self, exchange: &str, channel: &str, ts_ms: i64, line: &[u8]) -> PyResult<u8> {
        if line.is_empty() || line.contains(&b'\n') {
            return Err(PyValueError::new_err(
                "a raw archive line must be non-empty and contain no newline",
            ));
        }
        if let (Some(max_age), Some(oldest)) = (self.max_age_ms, self.oldest_ms) {
            if ts_ms.saturating_sub(oldest) >= max_age {
                return Ok(EXPIRED);
            }
        }
        let day = ts_ms.div_euclid(MS_PER_DAY);
        let Some(segment) = self.segments.iter_mut().find(|s| s.holds(exchange, channel, day)) else {
            return Ok(NOT_OPEN);
        };
        let added = line.len() as u64 + 1;
        if let Some(max_bytes) = self.max_bytes {
            if segment.lines > 0 && segment.size + added > max_bytes {
                return Ok(SEGMENT_FULL);
            }
        }
        segment.pending.extend_from_slice(line);
        segment.pending.push(b'\n');
        segment.size += added;
        segment.lines += 1;
        Ok(if segment.pending.len() >= self.frame_bytes { FRAME_FULL } else { APPENDED })
    }

    /// Start the segment `key`, the (exchange, channel, UTC date) of `ts_ms`, which its age counts from.
    fn open(&mut self, key: Key, ts_ms: i64) -> PyResult<()> {
        if self.segments.iter().any(|s| s.key == key) {
            return Err(PyValueError::new_err(format!("segment {key:?} is open already")));
        }
        self.segments.push(Segment {
            key,
            day: ts_ms.div_euclid(MS_PER_DAY),
            opened_ms: ts_ms,
            pending: Vec::new(),
            size: 0,
            lines: 0,
        });
        self.update_oldest();
        Ok(())
    }

    /// Forget the segment `key` and its pending lines.
    fn remove(&mut self, key: Key) -> PyResult<()> {
        let index = self.index(&key)?;
        self.segments.remove(index);
        self.update_oldest();
        Ok(())
    }

    /// The segment's lines not written yet (the next frame's), each with its newline.
    fn pending<'py>(&self, py: Python<'py>, key: Key) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new_bound(py, &self.segments[self.index(&key)?].pending))
    }

    /// The segment's pending lines were written as a frame. A buffer that a long line grew past a
    /// frame's size is given back, so an open segment keeps at most about a frame's memory.
    fn written(&mut self, key: Key) -> PyResult<()> {
        let index = self.index(&key)?;
        let pending = &mut self.segments[index].pending;
        if pending.capacity() > 2 * self.frame_bytes {
            *pending = Vec::new();
        } else {
            pending.clear();
        }
        Ok(())
    }

    fn has_pending(&self) -> bool {
        self.segments.iter().any(|s| !s.pending.is_empty())
    }

    /// Lines added to the segment since it was opened.
    fn lines(&self, key: Key) -> PyResult<u64> {
        Ok(self.segments[self.index(&key)?].lines)
    }

    /// The open segments whose first line is the age bound or more older than `now_ms`.
    fn expired(&self, now_ms: i64) -> Vec<Key> {
        let Some(max_age) = self.max_age_ms else {
            return Vec::new();
        };
        self.segments
            .iter()
            .filter(|s| now_ms.saturating_sub(s.opened_ms) >= max_age)
            .map(|s| s.key.clone())
            .collect()
    }

    fn __len__(&self) -> usize {
        self.segments.len()
    }
}
