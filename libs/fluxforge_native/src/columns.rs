//! Output rows into typed columns as they are buffered, handed to pyarrow as Arrow buffers when
//! written: no row is held as a dict, and pyarrow does not convert one Python object per value.
//! Only values whose conversion is plain are taken (exact floats, ints, strings, bools, None); the
//! caller converts rows holding anything else with pyarrow, which words the errors.

use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString};

use crate::rows::{Cell, ReadRows};

/// The largest magnitude of an int that converts to a double exactly, as pyarrow requires.
const EXACT_INT_IN_F64: i64 = 1 << 53;

/// The columns of a buffer: (name, kind) in schema order.
pub type Layout = Vec<(String, Kind)>;

/// What a column holds: "f64", "i64" (also timestamps, whose ints are in the column's unit),
/// "bool" or "str".
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    F64,
    I64,
    Bool,
    Str,
}

impl Kind {
    pub fn parse(name: &str) -> PyResult<Self> {
        match name {
            "f64" => Ok(Kind::F64),
            "i64" => Ok(Kind::I64),
            "bool" => Ok(Kind::Bool),
            "str" => Ok(Kind::Str),
            _ => Err(PyValueError::new_err(format!(
                "no column kind {name:?}: f64, i64, bool or str"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::F64 => "f64",
            Kind::I64 => "i64",
            Kind::Bool => "bool",
            Kind::Str => "str",
        }
    }
}

enum Values {
    F64(Vec<f64>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
    Str { offsets: Vec<i32>, data: Vec<u8> },
}

struct Column {
    name: Py<PyString>,
    valid: Vec<bool>,
    values: Values,
}

impl Column {
    /// Appends `value` (None or absent: null); false, appending nothing, for a value not taken.
    fn push(&mut self, value: Option<&Bound<'_, PyAny>>) -> bool {
        let Some(value) = value.filter(|value| !value.is_none()) else {
            self.push_null();
            return true;
        };
        let taken = match &mut self.values {
            Values::F64(values) => {
                if let Ok(float) = value.downcast_exact::<PyFloat>() {
                    values.push(float.value());
                    true
                } else if let Ok(int) = value.downcast_exact::<PyInt>() {
                    match int.extract::<i64>() {
                        Ok(n) if (-EXACT_INT_IN_F64..=EXACT_INT_IN_F64).contains(&n) => {
                            values.push(n as f64);
                            true
                        }
                        _ => false,
                    }
                } else {
                    false
                }
            }
            Values::I64(values) => match value
                .downcast_exact::<PyInt>()
                .map(|int| int.extract::<i64>())
            {
                Ok(Ok(n)) => {
                    values.push(n);
                    true
                }
                _ => false,
            },
            Values::Bool(values) => match value.downcast_exact::<PyBool>() {
                Ok(flag) => {
                    values.push(flag.is_true());
                    true
                }
                Err(_) => false,
            },
            Values::Str { offsets, data } => {
                match value.downcast_exact::<PyString>().map(|text| text.to_str()) {
                    Ok(Ok(text)) if data.len() + text.len() <= i32::MAX as usize => {
                        data.extend_from_slice(text.as_bytes());
                        offsets.push(data.len() as i32);
                        true
                    }
                    _ => false,
                }
            }
        };
        if taken {
            self.valid.push(true);
        }
        taken
    }

    /// Appends a cell a `RowReader` read for a column of this kind.
    fn push_cell(&mut self, cell: Cell, text: &[u8]) {
        match (cell, &mut self.values) {
            (Cell::F64(value), Values::F64(values)) => values.push(value),
            (Cell::I64(value), Values::I64(values)) => values.push(value),
            (Cell::Bool(value), Values::Bool(values)) => values.push(value),
            (Cell::Str(start, end), Values::Str { offsets, data }) => {
                data.extend_from_slice(&text[start..end]);
                offsets.push(data.len() as i32);
            }
            _ => {
                self.push_null();
                return;
            }
        }
        self.valid.push(true);
    }

    fn push_null(&mut self) {
        self.valid.push(false);
        match &mut self.values {
            Values::F64(values) => values.push(0.0),
            Values::I64(values) => values.push(0),
            Values::Bool(values) => values.push(false),
            Values::Str { offsets, data } => offsets.push(data.len() as i32),
        }
    }

    /// Back to its first `rows` values (a row may have been appended to only some columns).
    fn truncate(&mut self, rows: usize) {
        self.valid.truncate(rows);
        match &mut self.values {
            Values::F64(values) => values.truncate(rows),
            Values::I64(values) => values.truncate(rows),
            Values::Bool(values) => values.truncate(rows),
            Values::Str { offsets, data } => {
                offsets.truncate(rows + 1);
                data.truncate(offsets[rows] as usize);
            }
        }
    }

    /// Its Arrow buffers, values in `order` (None: as appended); the column is left empty.
    fn take(&mut self, py: Python<'_>, order: Option<&[usize]>) -> ArrowBuffers {
        let valid = gathered(std::mem::take(&mut self.valid), order);
        let nulls = valid.iter().filter(|&&bit| !bit).count();
        let validity = (nulls > 0).then(|| PyBytes::new_bound(py, &bitmap(&valid)).unbind());
        let (offsets, values) = match &mut self.values {
            Values::F64(values) => (
                None,
                PyBytes::new_bound(py, native_bytes(&gathered(std::mem::take(values), order))),
            ),
            Values::I64(values) => (
                None,
                PyBytes::new_bound(py, native_bytes(&gathered(std::mem::take(values), order))),
            ),
            Values::Bool(values) => (
                None,
                PyBytes::new_bound(py, &bitmap(&gathered(std::mem::take(values), order))),
            ),
            Values::Str { offsets, data } => {
                let (offsets, data) = (std::mem::replace(offsets, vec![0]), std::mem::take(data));
                let (offsets, data) = match order {
                    None => (offsets, data),
                    Some(order) => gathered_strings(&offsets, &data, order),
                };
                (
                    Some(PyBytes::new_bound(py, native_bytes(&offsets)).unbind()),
                    PyBytes::new_bound(py, &data),
                )
            }
        };
        (nulls, validity, offsets, values.unbind())
    }
}

/// `values` in `order` (None: as they are).
fn gathered<T: Copy>(values: Vec<T>, order: Option<&[usize]>) -> Vec<T> {
    match order {
        None => values,
        Some(order) => order.iter().map(|&row| values[row]).collect(),
    }
}

fn gathered_strings(offsets: &[i32], data: &[u8], order: &[usize]) -> (Vec<i32>, Vec<u8>) {
    let mut new_offsets = Vec::with_capacity(offsets.len());
    let mut new_data = Vec::with_capacity(data.len());
    new_offsets.push(0);
    for &row in order {
        new_data.extend_from_slice(&data[offsets[row] as usize..offsets[row + 1] as usize]);
        new_offsets.push(new_data.len() as i32);
    }
    (new_offsets, new_data)
}

/// Arrow's validity and boolean layout: one bit a value, least significant first.
fn bitmap(bits: &[bool]) -> Vec<u8> {
    let mut bytes = vec![0u8; bits.len().div_ceil(8)];
    for (i, _) in bits.iter().enumerate().filter(|(_, &bit)| bit) {
        bytes[i / 8] |= 1 << (i % 8);
    }
    bytes
}

#[cfg(not(target_endian = "little"))]
compile_error!(
    "Arrow buffers are little-endian: ColumnBuffer hands over its numbers' bytes as they are"
);

fn native_bytes<T: Copy>(values: &[T]) -> &[u8] {
    // SAFETY: plain numbers (f64, i64, i32) have no padding bytes; they are only read.
    unsafe {
        std::slice::from_raw_parts(values.as_ptr() as *const u8, std::mem::size_of_val(values))
    }
}

/// Per column: null count, validity bitmap (None without nulls), offsets (strings only), values.
type ArrowBuffers = (usize, Option<Py<PyBytes>>, Option<Py<PyBytes>>, Py<PyBytes>);

/// Rows of one table as columns, in the order of the schema it was made with; each row is tagged
/// with its partition, and `take` hands them over grouped by partition, each in append order.
#[pyclass(module = "fluxforge_native")]
pub struct ColumnBuffer {
    columns: Vec<Column>,
    layout: Layout,
    /// The layout of the last rows found to match `layout`: rows of the same reader share it, so
    /// they are checked by identity instead of comparing every column's name again.
    matched: Option<Arc<Layout>>,
    /// Per row, the partition its caller appended it for.
    partitions: Vec<u32>,
}

#[pymethods]
impl ColumnBuffer {
    /// `columns`: (name, kind) in schema order (`Kind`).
    #[new]
    fn new(columns: Vec<(Bound<'_, PyString>, String)>) -> PyResult<Self> {
        let mut layout = Vec::with_capacity(columns.len());
        let columns = columns
            .into_iter()
            .map(|(name, kind)| {
                let kind = Kind::parse(&kind)?;
                layout.push((name.to_str()?.to_owned(), kind));
                let values = match kind {
                    Kind::F64 => Values::F64(Vec::new()),
                    Kind::I64 => Values::I64(Vec::new()),
                    Kind::Bool => Values::Bool(Vec::new()),
                    Kind::Str => Values::Str {
                        offsets: vec![0],
                        data: Vec::new(),
                    },
                };
                Ok(Column {
                    // Interned, as the engine's keys are: a row's lookup then finds its key by
                    // identity instead of comparing the text.
                    name: PyString::intern_bound(name.py(), name.to_str()?).unbind(),
                    valid: Vec::new(),
                    values,
                })
            })
            .collect::<PyResult<_>>()?;
        Ok(ColumnBuffer {
            columns,
            layout,
            matched: None,
            partitions: Vec::new(),
        })
    }

    /// Appends `rows` of `partition`, dicts whose missing keys are null; false, with none of them
    /// appended, when one is not a dict or holds a value that is not taken.
    fn append(&mut self, rows: &Bound<'_, PyList>, partition: u32) -> bool {
        let py = rows.py();
        let before = self.partitions.len();
        for row in rows.iter() {
            let Ok(row) = row.downcast_exact::<PyDict>() else {
                return self.undo(before);
            };
            for column in &mut self.columns {
                let Ok(value) = row.get_item(column.name.bind(py)) else {
                    return self.undo(before);
                };
                if !column.push(value.as_ref()) {
                    return self.undo(before);
                }
            }
            self.partitions.push(partition);
        }
        true
    }

    /// Appends the rows of `rows` (read for these columns by a `RowReader`), those of its k-th
    /// partition as rows of partition `slots[k]`; false, with none of them appended, when the
    /// strings would outgrow a column's 32-bit offsets.
    fn extend(&mut self, rows: &ReadRows, slots: Vec<u32>) -> PyResult<bool> {
        if !self.matched.as_ref().is_some_and(|known| Arc::ptr_eq(known, &rows.layout)) {
            if *rows.layout != self.layout {
                return Err(PyValueError::new_err("rows read for other columns"));
            }
            self.matched = Some(Arc::clone(&rows.layout));
        }
        if slots.len() != rows.partition_count() {
            return Err(PyValueError::new_err(format!(
                "{} slots for {} partitions",
                slots.len(),
                rows.partition_count()
            )));
        }
        let too_long = |column: &Column| match &column.values {
            Values::Str { data, .. } => data.len() + rows.text.len() > i32::MAX as usize,
            _ => false,
        };
        if self.columns.iter().any(too_long) {
            return Ok(false);
        }
        let width = self.layout.len();
        for (i, column) in self.columns.iter_mut().enumerate() {
            for row in rows.cells.chunks_exact(width) {
                column.push_cell(row[i], &rows.text);
            }
        }
        self.partitions
            .extend(rows.row_partitions.iter().map(|&p| slots[p as usize]));
        Ok(true)
    }

    fn __len__(&self) -> usize {
        self.partitions.len()
    }

    /// Keeps its first `rows` rows, dropping what was appended after them.
    fn truncate(&mut self, rows: usize) -> PyResult<()> {
        let held = self.partitions.len();
        if rows > held {
            return Err(PyValueError::new_err(format!(
                "cannot truncate {held} rows to {rows}"
            )));
        }
        self.undo(rows);
        Ok(())
    }

    /// The rows per partition (`counts[p]` of partition p, up to the greatest appended) and the
    /// columns as Arrow buffers (`ArrowBuffers`, in schema order), their rows grouped by partition
    /// in that order; the buffer is left empty.
    fn take(&mut self, py: Python<'_>) -> (Vec<usize>, Vec<ArrowBuffers>) {
        let partitions = std::mem::take(&mut self.partitions);
        let mut counts = vec![0usize; partitions.iter().max().map_or(0, |&p| p as usize + 1)];
        for &p in &partitions {
            counts[p as usize] += 1;
        }
        // A stable counting sort: row order[k] goes to position k.
        let order = (!partitions.is_sorted()).then(|| {
            let mut next: Vec<usize> = counts
                .iter()
                .scan(0, |start, &n| {
                    let first = *start;
                    *start += n;
                    Some(first)
                })
                .collect();
            let mut order = vec![0usize; partitions.len()];
            for (row, &p) in partitions.iter().enumerate() {
                order[next[p as usize]] = row;
                next[p as usize] += 1;
            }
            order
        });
        let buffers = self
            .columns
            .iter_mut()
            .map(|column| column.take(py, order.as_deref()))
            .collect();
        (counts, buffers)
    }
}

impl ColumnBuffer {
    fn undo(&mut self, rows: usize) -> bool {
        for column in &mut self.columns {
            column.truncate(rows);
        }
        self.partitions.truncate(rows);
        false
    }
}
