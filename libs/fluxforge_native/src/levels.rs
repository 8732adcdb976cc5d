//! One side of an order book as `(price, size)` pairs of machine floats, parsed straight from
//! the JSON of an envelope's `bids` or `asks`, so that no Python object is made per level.

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyIndexError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyList, PySlice, PyTuple};

use crate::json::Reader;

/// Price levels of one side, best first. Immutable: a book tick and a symbol's state share them.
#[pyclass(frozen, sequence, module = "fluxforge_native")]
pub struct Levels {
    pub(crate) pairs: Vec<(f64, f64)>,
}

/// Every price and size of `pairs` is in `range` and the prices strictly ordered (`descending`
/// for bids).
fn side_ok(pairs: &[(f64, f64)], descending: bool, range: &std::ops::Range<f64>) -> bool {
    let mut prev = if descending { range.end } else { 0.0 };
    for &(price, size) in pairs {
        let in_range = range.contains(&price) && range.contains(&size);
        let ordered = if descending { price < prev } else { price > prev };
        if !(in_range && ordered) {
            return false;
        }
        prev = price;
    }
    true
}

#[pymethods]
impl Levels {
    /// The levels of a JSON array of `[price, size]` arrays (numbers); the error names the first
    /// offending element under `path` in msgspec's words, as a schema error of the envelope.
    #[staticmethod]
    fn from_json(raw: &Bound<'_, PyAny>, path: &str) -> PyResult<Levels> {
        let buffer = PyBuffer::<u8>::get_bound(raw)?;
        if !buffer.is_c_contiguous() {
            return Err(PyTypeError::new_err("levels JSON must be a contiguous buffer"));
        }
        let bytes: &[u8] = if buffer.len_bytes() == 0 {
            &[]
        } else {
            // SAFETY: a C-contiguous buffer of `len_bytes` (> 0) bytes, held (and so kept alive and
            // unmoved) by `buffer` for as long as the slice is used, only read, with the GIL held.
            unsafe { std::slice::from_raw_parts(buffer.buf_ptr() as *const u8, buffer.len_bytes()) }
        };
        let mut parser = Reader::new(bytes);
        let parsed = parser.levels().and_then(|pairs| {
            if parser.at_end() {
                Ok(pairs)
            } else {
                Err(("invalid JSON: text after the levels".to_owned(), None))
            }
        });
        parsed.map(|pairs| Levels { pairs }).map_err(|(what, at)| {
            let at = match at {
                None => String::new(),
                Some((level, None)) => format!("[{level}]"),
                Some((level, Some(element))) => format!("[{level}][{element}]"),
            };
            PyValueError::new_err(format!("{what} - at `{path}{at}`"))
        })
    }

    /// Levels from `(price, size)` pairs of numbers (a stored state, a test).
    #[staticmethod]
    fn from_pairs(pairs: &Bound<'_, PyAny>) -> PyResult<Levels> {
        let mut out = Vec::with_capacity(pairs.len().unwrap_or(0));
        for item in pairs.iter()? {
            out.push(pair(&item?)?);
        }
        Ok(Levels { pairs: out })
    }

    /// The levels as a list of `(price, size)` tuples.
    fn pairs<'py>(&self, py: Python<'py>) -> Bound<'py, PyList> {
        PyList::new_bound(py, self.pairs.iter().map(|&pair| -> PyObject { pair.into_py(py) }))
    }

    fn __len__(&self) -> usize {
        self.pairs.len()
    }

    fn __getitem__(&self, py: Python<'_>, index: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        if let Ok(slice) = index.downcast::<PySlice>() {
            let span = slice.indices(self.pairs.len() as isize)?;
            let pairs = (0..span.slicelength)
                .map(|k| self.pairs[(span.start + k as isize * span.step) as usize])
                .collect();
            return Ok(Levels { pairs }.into_py(py));
        }
        let i: isize = index.extract()?;
        let n = self.pairs.len() as isize;
        let at = if i < 0 { i + n } else { i };
        if at < 0 || at >= n {
            return Err(PyIndexError::new_err("level index out of range"));
        }
        let (p, q) = self.pairs[at as usize];
        Ok((p, q).into_py(py))
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.pairs(py).as_any().iter().map(Bound::into_any)
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        if let Ok(other) = other.downcast::<Levels>() {
            return Ok(self.pairs == other.get().pairs);
        }
        self.pairs(py).as_any().eq(other)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("Levels({})", self.pairs(py).repr()?))
    }
}

/// A level from Python: two numbers, read directly from the list or tuple a stored state decodes to.
fn pair(item: &Bound<'_, PyAny>) -> PyResult<(f64, f64)> {
    let (price, size) = if let Ok(list) = item.downcast::<PyList>() {
        (list.len() == 2).then(|| (list.get_item(0), list.get_item(1)))
    } else if let Ok(tuple) = item.downcast::<PyTuple>() {
        (tuple.len() == 2).then(|| (tuple.get_item(0), tuple.get_item(1)))
    } else {
        (item.len()? == 2).then(|| (item.get_item(0), item.get_item(1)))
    }
    .ok_or_else(|| PyValueError::new_err(format!("a level is (price, size), got {}", item.repr().map_or_else(|_| "?".into(), |r| r.to_string()))))?;
    Ok((number(&price?)?, number(&size?)?))
}

/// A level's value from Python: a float or an int, not a bool (as msgspec decodes them).
fn number(value: &Bound<'_, PyAny>) -> PyResult<f64> {
    if let Ok(float) = value.downcast_exact::<PyFloat>() {
        return Ok(float.value());
    }
    if value.is_instance_of::<PyBool>() || !(value.is_instance_of::<PyFloat>() || value.is_instance_of::<PyInt>()) {
        return Err(PyTypeError::new_err(format!(
            "a level's price and size are numbers, got {}",
            value.get_type().name()?
        )));
    }
    value.extract()
}

/// Whether a book's sides are both non-empty, each valid (prices and sizes in `[low, high)`,
/// prices strictly ordered) and uncrossed.
#[pyfunction]
pub fn book_ok(bids: &Levels, asks: &Levels, low: f64, high: f64) -> bool {
    valid_book(&bids.pairs, &asks.pairs, &(low..high))
}

/// `book_ok` of sides not yet handed to Python.
pub(crate) fn valid_book(bids: &[(f64, f64)], asks: &[(f64, f64)], range: &std::ops::Range<f64>) -> bool {
    match (bids.first(), asks.first()) {
        (Some(bid), Some(ask)) => side_ok(bids, true, range) && side_ok(asks, false, range) && bid.0 < ask.0,
        _ => false,
    }
}
