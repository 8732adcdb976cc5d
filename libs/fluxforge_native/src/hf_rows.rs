//! The engine's HF rows as cells (`ReadRows`, the shape the sink reads feature messages into)
//! instead of dicts: a row of ~105 columns cost ~7 us as a dict of Python floats and as much
//! again to go into a writer's columns. Dicts are made only for a caller that reads rows one by
//! one (the Faust worker's messages, tests).

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::basic::CompareOp;
use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyList, PySlice, PyString};

use crate::columns::{Kind, Layout};
use crate::flows::IntervalFlows;
use crate::interval_columns::{IntervalColumns, IntervalNames};
use crate::levels::Levels;
use crate::rows::{Cell, ReadRows};
use crate::snapshot::{BookColumns, BookNames};
use crate::windows::RollingWindows;

/// Finds each column of a layout by name, once: a column taken twice or of another kind is an
/// error, and so is one never taken (`finish`), so that every column of the table is written.
pub struct ColumnFinder {
    index: HashMap<String, (usize, Kind)>,
    taken: Vec<bool>,
}

impl ColumnFinder {
    fn new(layout: &Layout) -> PyResult<Self> {
        let mut index = HashMap::with_capacity(layout.len());
        for (i, (name, kind)) in layout.iter().enumerate() {
            if index.insert(name.clone(), (i, *kind)).is_some() {
                return Err(PyValueError::new_err(format!("column {name:?} given twice")));
            }
        }
        Ok(ColumnFinder { index, taken: vec![false; layout.len()] })
    }

    pub fn take(&mut self, name: &str, kind: Kind) -> PyResult<usize> {
        match self.index.get(name) {
            None => Err(PyValueError::new_err(format!("the HF columns have no {name:?}"))),
            Some(&(_, found)) if found != kind => Err(PyValueError::new_err(format!(
                "column {name:?} is of kind {}, its values of kind {}",
                found.name(),
                kind.name()
            ))),
            Some(&(i, _)) if self.taken[i] => Err(PyValueError::new_err(format!("column {name:?} is written twice"))),
            Some(&(i, _)) => {
                self.taken[i] = true;
                Ok(i)
            }
        }
    }

    fn finish(self, layout: &Layout) -> PyResult<()> {
        let missing: Vec<&str> = layout
            .iter()
            .zip(&self.taken)
            .filter(|(_, &taken)| !taken)
            .map(|((name, _), _)| name.as_str())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(PyValueError::new_err(format!("no feature writes the HF columns {missing:?}")))
        }
    }
}

/// Where each feature of an HF row goes, under one config.
#[pyclass(frozen, module = "fluxforge_native")]
pub struct HfColumns {
    layout: Arc<Layout>,
    /// The layout's names, interned (the keys of a row made a dict), then the raw sides' if kept.
    names: Vec<Py<PyString>>,
    /// exchange, symbol, ts
    keys: [usize; 3],
    book: BookColumns,
    interval: IntervalColumns,
    /// The sides are kept whole (`bids_raw`, `asks_raw`: lists, which no cell holds).
    keep_raw: bool,
}

#[pymethods]
impl HfColumns {
    /// `columns`: the HF table's columns as `ColumnBuffer` takes them (name, kind), in schema
    /// order, but for the raw sides, which `keep_raw` adds after them; `book` and `interval`: the
    /// names of their columns (`BookNames`, `IntervalNames`).
    #[new]
    fn new(
        py: Python<'_>,
        columns: Vec<(String, String)>,
        book: BookNames,
        interval: IntervalNames,
        keep_raw: bool,
    ) -> PyResult<Self> {
        let layout: Layout = columns
            .into_iter()
            .map(|(name, kind)| Ok((name, Kind::parse(&kind)?)))
            .collect::<PyResult<_>>()?;
        let mut finder = ColumnFinder::new(&layout)?;
        let keys = [
            finder.take("exchange", Kind::Str)?,
            finder.take("symbol", Kind::Str)?,
            finder.take("ts", Kind::I64)?,
        ];
        let book = BookColumns::new(book, &mut finder)?;
        let interval = IntervalColumns::new(interval, &mut finder)?;
        finder.finish(&layout)?;
        let raw: &[&str] = if keep_raw { &["bids_raw", "asks_raw"] } else { &[] };
        let names = layout
            .iter()
            .map(|(name, _)| name.as_str())
            .chain(raw.iter().copied())
            .map(|name| PyString::intern_bound(py, name).unbind())
            .collect();
        Ok(HfColumns { layout: Arc::new(layout), names, keys, book, interval, keep_raw })
    }
}

/// The HF rows the engine emitted, in order, as cells; a sequence of dicts to Python.
#[pyclass(sequence, module = "fluxforge_native")]
pub struct HfRows {
    columns: Option<Py<HfColumns>>,
    rows: ReadRows,
    /// Per row, its book's sides (None without a book), when its columns keep them.
    raw: Vec<Option<(Py<Levels>, Py<Levels>)>>,
}

#[pymethods]
impl HfRows {
    #[new]
    fn new() -> Self {
        HfRows { columns: None, rows: ReadRows::new(Arc::new(Vec::new()), 0), raw: Vec::new() }
    }

    /// Emits the row of the interval ending at `t` of `exchange:symbol` with the book as it
    /// stands (`bids` and `asks`, None before any book) and its mid `mid`, applied at
    /// `last_book_ms`. `windows` holds the interval already; `prev_mid` and `prev_velocity` are
    /// the previous row's. Returns this row's mid velocity.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (columns, exchange, symbol, t, bids, asks, last_book_ms, flows, windows, mid, prev_mid, prev_velocity))]
    fn write(
        &mut self,
        columns: &Bound<'_, HfColumns>,
        exchange: &str,
        symbol: &str,
        t: i64,
        bids: Option<Bound<'_, Levels>>,
        asks: Option<Bound<'_, Levels>>,
        last_book_ms: Option<i64>,
        flows: PyRef<'_, IntervalFlows>,
        mut windows: PyRefMut<'_, RollingWindows>,
        mid: Option<f64>,
        prev_mid: Option<f64>,
        prev_velocity: Option<f64>,
    ) -> PyResult<Option<f64>> {
        let spec = columns.get();
        match &self.columns {
            // Another state's columns of the same config: the same cells.
            Some(bound) if bound.is(columns) || (bound.get().layout == spec.layout && bound.get().keep_raw == spec.keep_raw) => {}
            _ if self.__len__() == 0 => {
                self.columns = Some(columns.clone().unbind());
                self.rows = ReadRows::new(Arc::clone(&spec.layout), spec.keys[2]);
            }
            _ => return Err(PyValueError::new_err("HF rows of another config are held: clear them first")),
        }
        let rows = &mut self.rows;
        let start = rows.cells.len();
        rows.cells.resize(start + spec.layout.len(), Cell::Null);
        let row = &mut rows.cells[start..];
        let book = match (&bids, &asks) {
            (Some(bids), Some(asks)) => spec.book.write(&bids.get().pairs, &asks.get().pairs, row),
            _ => {
                spec.book.write_empty(row);
                Ok(())
            }
        };
        let written = book.and_then(|()| {
            spec.interval.write(row, t, last_book_ms, &flows, &mut windows, mid, prev_mid, prev_velocity)
        });
        let velocity = match written {
            Ok(velocity) => velocity,
            Err(err) => {
                self.rows.cells.truncate(start);
                return Err(err);
            }
        };
        let rows = &mut self.rows;
        let mut text = |value: &str| {
            let first = rows.text.len();
            rows.text.extend_from_slice(value.as_bytes());
            (first, rows.text.len())
        };
        let (exchange, symbol) = (text(exchange), text(symbol));
        let [e, s, ts] = spec.keys;
        rows.cells[start + e] = Cell::Str(exchange.0, exchange.1);
        rows.cells[start + s] = Cell::Str(symbol.0, symbol.1);
        rows.cells[start + ts] = Cell::I64(t);
        rows.tag_row(exchange, symbol, t);
        if spec.keep_raw {
            self.raw.push(bids.zip(asks).map(|(bids, asks)| (bids.unbind(), asks.unbind())));
        }
        Ok(velocity)
    }

    /// The rows as `PartitionedParquetWriter.add_read` takes them; None when they hold the raw
    /// sides, which only dicts carry.
    fn read_rows(&self) -> Option<ReadRows> {
        self.columns
            .as_ref()
            .filter(|columns| !columns.get().keep_raw)
            .map(|_| self.rows.clone())
    }

    fn clear(&mut self) {
        self.rows.clear();
        self.raw.clear();
    }

    fn __len__(&self) -> usize {
        self.rows.row_partitions.len()
    }

    /// A row as a dict (its columns in schema order), or a list of them for a slice.
    fn __getitem__(&self, py: Python<'_>, index: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        let len = self.__len__();
        if let Ok(slice) = index.downcast::<PySlice>() {
            let picked = slice.indices(len as isize)?;
            let rows = (0..picked.slicelength)
                .map(|k| self.dict(py, (picked.start + k as isize * picked.step) as usize))
                .collect::<PyResult<Vec<_>>>()?;
            return Ok(PyList::new_bound(py, rows).into_any().unbind());
        }
        let index: isize = match index.extract() {
            Ok(index) => index,
            Err(_) if index.is_instance_of::<PyInt>() => return Err(PyIndexError::new_err("HF row index out of range")),
            Err(err) => return Err(err),
        };
        let row = if index < 0 { index + len as isize } else { index };
        if !(0..len as isize).contains(&row) {
            return Err(PyIndexError::new_err("HF row index out of range"));
        }
        Ok(self.dict(py, row as usize)?.into_any().unbind())
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<PyObject> {
        Ok(self.list(py)?.as_any().iter()?.into_any().unbind())
    }

    /// Equal to a sequence of the same dicts (a list of rows, other `HfRows`).
    fn __richcmp__(&self, py: Python<'_>, other: &Bound<'_, PyAny>, op: CompareOp) -> PyResult<PyObject> {
        let other = match other.downcast::<HfRows>() {
            Ok(rows) => rows.borrow().list(py)?.into_any(),
            Err(_) if other.downcast::<PyList>().is_ok() => other.clone(),
            Err(_) => return Ok(py.NotImplemented()),
        };
        let equal = self.list(py)?.as_any().eq(other)?;
        match op {
            CompareOp::Eq => Ok(equal.into_py(py)),
            CompareOp::Ne => Ok((!equal).into_py(py)),
            _ => Ok(py.NotImplemented()),
        }
    }
}

impl HfRows {
    fn list<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let rows = (0..self.__len__()).map(|row| self.dict(py, row)).collect::<PyResult<Vec<_>>>()?;
        Ok(PyList::new_bound(py, rows))
    }

    fn dict<'py>(&self, py: Python<'py>, row: usize) -> PyResult<Bound<'py, PyDict>> {
        let Some(columns) = &self.columns else {
            return Err(PyIndexError::new_err("no HF rows"));
        };
        let spec = columns.get();
        let width = spec.layout.len();
        let text = &self.rows.text;
        let dict = PyDict::new_bound(py);
        for (name, cell) in spec.names.iter().zip(&self.rows.cells[row * width..(row + 1) * width]) {
            let name = name.bind(py);
            match *cell {
                Cell::Absent => {}
                Cell::Null => dict.set_item(name, py.None())?,
                Cell::F64(value) => dict.set_item(name, value)?,
                Cell::I64(value) => dict.set_item(name, value)?,
                Cell::Bool(value) => dict.set_item(name, value)?,
                Cell::Str(first, end) => dict.set_item(name, String::from_utf8_lossy(&text[first..end]))?,
            }
        }
        if spec.keep_raw {
            let sides = self.raw[row].as_ref();
            for (name, side) in spec.names[width..].iter().zip([sides.map(|s| &s.0), sides.map(|s| &s.1)]) {
                let value = match side {
                    Some(levels) => {
                        let pairs = &levels.get().pairs;
                        PyList::new_bound(py, pairs.iter().map(|&(p, q)| PyList::new_bound(py, [p, q]))).into_any()
                    }
                    None => py.None().into_bound(py),
                };
                dict.set_item(name.bind(py), value)?;
            }
        }
        Ok(dict)
    }
}
