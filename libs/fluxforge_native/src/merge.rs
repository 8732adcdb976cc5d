//! The raw archive's segments merged back into ingest order (`fluxforge_common.pipeline.lines`):
//! each segment is in that order, and every line a reprocess reads passes the merge, which
//! `heapq.merge` did at ~0.8 us a line (a Python generator and a key call each).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::{PyTraverseError, PyVisit};
use pyo3::types::PyBytes;

use crate::ingest::{digits_u64, ingest_digits};

/// A stamp's number, ordered as Python's `int` of its digits.
#[derive(PartialEq, Eq)]
enum Number {
    Small(u64),
    /// Beyond a u64: its digits without leading zeros (so more of them means a greater number).
    Big(Vec<u8>),
}

impl Number {
    fn of(digits: &[u8]) -> Number {
        match digits_u64(digits) {
            Some(value) => Number::Small(value),
            None => {
                let first = digits.iter().position(|&d| d != b'0').unwrap_or(digits.len());
                Number::Big(digits[first..].to_vec())
            }
        }
    }
}

impl Ord for Number {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Number::Small(a), Number::Small(b)) => a.cmp(b),
            (Number::Small(_), Number::Big(_)) => Ordering::Less,
            (Number::Big(_), Number::Small(_)) => Ordering::Greater,
            (Number::Big(a), Number::Big(b)) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
        }
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A line's place: its stamp's (session, n), (0, 0) without one, then its segment's index, as
/// `heapq.merge` breaks ties.
type Place = (Number, Number, usize);

fn place(line: &[u8], source: usize) -> Place {
    match ingest_digits(line) {
        Some((session, n)) => (Number::of(session), Number::of(n), source),
        None => (Number::Small(0), Number::Small(0), source),
    }
}

/// One segment: an iterator of lists of its lines, in ingest order, and the list being read.
struct Source {
    blocks: PyObject,
    lines: Vec<Py<PyBytes>>,
    next: usize,
}

impl Source {
    /// Its next line, fetching lists as needed; None once the iterator is done.
    fn line<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        while self.next == self.lines.len() {
            match self.blocks.bind(py).call_method0("__next__") {
                Ok(lines) => {
                    self.lines = lines.extract()?;
                    self.next = 0;
                }
                Err(e) if e.is_instance_of::<PyStopIteration>(py) => {
                    self.lines = Vec::new(); // its last lines are not held until the merge ends
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Some(self.lines[self.next].bind(py).clone()))
    }
}

/// The lines of several segments in ingest order: each segment an iterator of lists of its lines
/// (bytes), in that order; lines of the same stamp in the order of their segments, as
/// `heapq.merge(*segments, key=ingest_key)` gives them. A segment is read from again only when
/// the next line is asked for, as `heapq.merge` does.
#[pyclass(module = "fluxforge_native")]
pub struct IngestMerge {
    sources: Vec<Source>,
    heap: BinaryHeap<Reverse<Place>>,
    /// The segment whose line was handed out last, not yet moved on.
    taken: Option<usize>,
}

impl IngestMerge {
    /// Its next line into the heap; after an error the merge is over, as a generator's is.
    fn push_next(&mut self, py: Python<'_>, source: usize) -> PyResult<()> {
        match self.sources[source].line(py) {
            Ok(Some(line)) => self.heap.push(Reverse(place(line.as_bytes(), source))),
            Ok(None) => {}
            Err(e) => {
                self.heap.clear();
                return Err(e);
            }
        }
        Ok(())
    }
}

#[pymethods]
impl IngestMerge {
    #[new]
    fn new(py: Python<'_>, segments: Vec<PyObject>) -> PyResult<Self> {
        let mut merge = IngestMerge { sources: Vec::new(), heap: BinaryHeap::new(), taken: None };
        for segment in segments {
            let blocks = segment.bind(py).iter()?.into_any().unbind();
            merge.sources.push(Source { blocks, lines: Vec::new(), next: 0 });
        }
        for source in 0..merge.sources.len() {
            merge.push_next(py, source)?;
        }
        Ok(merge)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.sources.iter().try_for_each(|source| visit.call(&source.blocks))
    }

    fn __clear__(&mut self) {
        self.sources.clear();
        self.heap.clear();
        self.taken = None;
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyBytes>>> {
        if let Some(source) = self.taken.take() {
            self.sources[source].next += 1;
            self.push_next(py, source)?;
        }
        let Some(Reverse((_, _, source))) = self.heap.pop() else {
            return Ok(None);
        };
        self.taken = Some(source);
        let taken = &self.sources[source];
        Ok(Some(taken.lines[taken.next].clone_ref(py)))
    }
}
