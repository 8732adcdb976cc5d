//! Feature messages (a JSON array of row objects, `fluxforge_common.messages.rows`) read straight
//! into the values `ColumnBuffer` keeps, without a Python object per row or value: decoding a
//! 105-column row as dicts and appending them cost the sink ~20 us a row.
//!
//! A message is taken only if orjson would decode it and `ColumnBuffer.append` would take every
//! row it decoded, with the same values; anything else (escapes, a duplicate or unknown key, a
//! nested value, an int beyond 2^53 in a float column, a row without its partition keys) is left
//! to that path, which words the errors.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::columns::{Kind, Layout};
use crate::json::Reader;

const MS_PER_DAY: i64 = 86_400_000;

/// One value of a row, as its column keeps it (`Str`: a range of the message's text).
#[derive(Clone, Copy, PartialEq)]
pub enum Cell {
    Absent,
    Null,
    F64(f64),
    I64(i64),
    Bool(bool),
    Str(usize, usize),
}

/// Reads feature messages for one table's columns (those of the `ColumnBuffer` they go into).
#[pyclass(module = "fluxforge_native")]
pub struct RowReader {
    layout: Arc<Layout>,
    kinds: Vec<Kind>,
    index: HashMap<Vec<u8>, usize>,
    /// The column of each key of the last row read, in its order: the rows of one writer come
    /// with their keys in one order, so the key at the same place is tried first.
    order: Vec<usize>,
    exchange: usize,
    symbol: usize,
    ts: usize,
    /// The `ts` values taken: [first, end); the others are left to the caller's checks.
    ts_bounds: (i64, i64),
}

/// The rows of one message, each tagged with its partition: (exchange, symbol, UTC day of ts).
/// The engine's HF rows take this shape too (`HfRows`), so that both go into a writer's columns
/// the same way.
#[pyclass(module = "fluxforge_native", frozen)]
#[derive(Clone)]
pub struct ReadRows {
    /// The columns read for (those of the `ColumnBuffer` they may extend).
    pub layout: Arc<Layout>,
    /// Row-major, `layout.len()` cells a row.
    pub cells: Vec<Cell>,
    pub text: Vec<u8>,
    /// Per row, its index in `partitions`.
    pub row_partitions: Vec<u32>,
    /// The column of `ts`.
    ts: usize,
    /// (exchange, symbol, day, first ts, rows) in order of first appearance.
    partitions: Vec<(String, String, i64, i64, usize)>,
    /// A partition by the hash of its (exchange, symbol, day): rows of thousands of symbols
    /// interleave in the engine's output.
    index: HashMap<u64, u32>,
    #[pyo3(get)]
    min_ts: Option<i64>,
    #[pyo3(get)]
    max_ts: Option<i64>,
}

#[pymethods]
impl RowReader {
    /// `columns` as `ColumnBuffer` takes them; `ts_bounds`: the `ts` values taken, [first, end).
    #[new]
    fn new(columns: Vec<(String, String)>, ts_bounds: (i64, i64)) -> PyResult<Self> {
        let mut layout = Layout::with_capacity(columns.len());
        let mut index = HashMap::with_capacity(columns.len());
        for (i, (name, kind)) in columns.into_iter().enumerate() {
            if index.insert(name.as_bytes().to_vec(), i).is_some() {
                return Err(PyValueError::new_err(format!("column {name:?} given twice")));
            }
            layout.push((name, Kind::parse(&kind)?));
        }
        let column = |name: &str, kind: Kind| match index.get(name.as_bytes()) {
            Some(&i) if layout[i].1 == kind => Ok(i),
            _ => Err(PyValueError::new_err(format!(
                "rows need a column {name:?} of kind {}",
                kind.name()
            ))),
        };
        Ok(RowReader {
            exchange: column("exchange", Kind::Str)?,
            symbol: column("symbol", Kind::Str)?,
            ts: column("ts", Kind::I64)?,
            kinds: layout.iter().map(|&(_, kind)| kind).collect(),
            layout: Arc::new(layout),
            index,
            order: Vec::new(),
            ts_bounds,
        })
    }

    /// The rows of message `data`, or None when it is not taken (decode it as dicts instead).
    fn read(&mut self, data: &[u8]) -> Option<ReadRows> {
        let mut rows = ReadRows::new(Arc::clone(&self.layout), self.ts);
        let mut reader = Reader::new(data);
        if reader.peek() == Some(b'{') {
            self.row(&mut reader, &mut rows)?; // one object is a batch of one
        } else {
            if !reader.eat(b'[') {
                return None;
            }
            if !reader.eat(b']') {
                loop {
                    self.row(&mut reader, &mut rows)?;
                    if reader.eat(b']') {
                        break;
                    }
                    if !reader.eat(b',') {
                        return None;
                    }
                }
            }
        }
        reader.at_end().then_some(rows)
    }
}

impl RowReader {
    fn row(&mut self, reader: &mut Reader<'_>, rows: &mut ReadRows) -> Option<()> {
        if !reader.eat(b'{') {
            return None;
        }
        let start = rows.cells.len();
        rows.cells.resize(start + self.kinds.len(), Cell::Absent);
        if !reader.eat(b'}') {
            let mut place = 0;
            loop {
                let column = match self.order.get(place) {
                    Some(&column) if reader.key(self.layout[column].0.as_bytes()) => column,
                    _ => {
                        let key = reader.plain_bytes()?;
                        let column = *self.index.get(key)?;
                        self.order.truncate(place);
                        self.order.push(column);
                        column
                    }
                };
                place += 1;
                if !reader.eat(b':') || rows.cells[start + column] != Cell::Absent {
                    return None;
                }
                rows.cells[start + column] = self.value(reader, self.kinds[column], &mut rows.text)?;
                if reader.eat(b'}') {
                    break;
                }
                if !reader.eat(b',') {
                    return None;
                }
            }
        }
        let cells = &rows.cells[start..];
        let (Cell::Str(e0, e1), Cell::Str(s0, s1), Cell::I64(ts)) =
            (cells[self.exchange], cells[self.symbol], cells[self.ts])
        else {
            return None;
        };
        if !(self.ts_bounds.0..self.ts_bounds.1).contains(&ts) {
            return None;
        }
        rows.tag_row((e0, e1), (s0, s1), ts);
        Some(())
    }

    /// A value of a column of `kind`, as orjson decodes it and `ColumnBuffer` takes it, or None.
    fn value(&self, reader: &mut Reader<'_>, kind: Kind, text: &mut Vec<u8>) -> Option<Cell> {
        match (reader.peek()?, kind) {
            (b'n', _) => reader.null().then_some(Cell::Null),
            (b'-' | b'0'..=b'9', Kind::F64) => {
                let number = reader.number()?;
                if number.integer {
                    // orjson makes an int, which converts only where a double holds it exactly.
                    let n = number.int.filter(|n| n.unsigned_abs() <= 1 << 53)?;
                    Some(Cell::F64(n as f64))
                } else {
                    number.value.is_finite().then_some(Cell::F64(number.value))
                }
            }
            (b'-' | b'0'..=b'9', Kind::I64) => reader.number()?.int.map(Cell::I64),
            (b't' | b'f', Kind::Bool) => reader.boolean().map(Cell::Bool),
            (b'"', Kind::Str) => {
                let value = reader.plain_string()?;
                let start = text.len();
                if start + value.len() > i32::MAX as usize {
                    return None;
                }
                text.extend_from_slice(value.as_bytes());
                Some(Cell::Str(start, text.len()))
            }
            _ => None,
        }
    }
}

fn partition_key(exchange: &[u8], symbol: &[u8], day: i64) -> u64 {
    let mut hasher = DefaultHasher::new();
    (exchange, symbol, day).hash(&mut hasher);
    hasher.finish()
}

impl ReadRows {
    pub fn new(layout: Arc<Layout>, ts: usize) -> Self {
        ReadRows {
            layout,
            cells: Vec::new(),
            text: Vec::new(),
            row_partitions: Vec::new(),
            ts,
            partitions: Vec::new(),
            index: HashMap::new(),
            min_ts: None,
            max_ts: None,
        }
    }

    pub fn partition_count(&self) -> usize {
        self.partitions.len()
    }

    /// Tags the last row of `cells` with its partition: its exchange and symbol (ranges of
    /// `text`) and the UTC day of its `ts`.
    pub fn tag_row(&mut self, exchange: (usize, usize), symbol: (usize, usize), ts: i64) {
        let (exchange, symbol) = (&self.text[exchange.0..exchange.1], &self.text[symbol.0..symbol.1]);
        let day = ts.div_euclid(MS_PER_DAY);
        let key = partition_key(exchange, symbol, day);
        let same = |(e, s, d, _, _): &(String, String, i64, i64, usize)| {
            *d == day && e.as_bytes() == exchange && s.as_bytes() == symbol
        };
        let found = match self.index.get(&key) {
            Some(&p) if same(&self.partitions[p as usize]) => Some(p as usize),
            Some(_) => self.partitions.iter().rposition(same), // another partition of the same hash
            None => None,
        };
        let partition = match found {
            Some(p) => p,
            None => {
                // Both are UTF-8 (read by `plain_string`, or written from Python strings).
                let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
                self.partitions.push((text(exchange), text(symbol), day, ts, 0));
                self.index.entry(key).or_insert(self.partitions.len() as u32 - 1);
                self.partitions.len() - 1
            }
        };
        self.partitions[partition].4 += 1;
        self.row_partitions.push(partition as u32);
        self.widen(ts);
    }

    /// Takes `ts` into [`min_ts`, `max_ts`].
    fn widen(&mut self, ts: i64) {
        self.min_ts = Some(self.min_ts.map_or(ts, |m| m.min(ts)));
        self.max_ts = Some(self.max_ts.map_or(ts, |m| m.max(ts)));
    }

    pub fn clear(&mut self) {
        self.cells.clear();
        self.text.clear();
        self.row_partitions.clear();
        self.partitions.clear();
        self.index.clear();
        self.min_ts = None;
        self.max_ts = None;
    }
}

#[pymethods]
impl ReadRows {
    fn __len__(&self) -> usize {
        self.row_partitions.len()
    }

    /// The rows of the partitions `keep` marks (one flag per partition, in their order).
    fn select(&self, keep: Vec<bool>) -> PyResult<ReadRows> {
        if keep.len() != self.partitions.len() {
            return Err(PyValueError::new_err(format!(
                "{} flags for {} partitions",
                keep.len(),
                self.partitions.len()
            )));
        }
        let mut kept = ReadRows::new(Arc::clone(&self.layout), self.ts);
        kept.text.clone_from(&self.text);
        let mut renumbered = vec![0u32; keep.len()];
        for (p, partition) in self.partitions.iter().enumerate() {
            if keep[p] {
                renumbered[p] = kept.partitions.len() as u32;
                let (exchange, symbol, day, _, _) = partition;
                let key = partition_key(exchange.as_bytes(), symbol.as_bytes(), *day);
                kept.index.entry(key).or_insert(renumbered[p]);
                kept.partitions.push(partition.clone());
            }
        }
        let width = self.layout.len();
        for (row, &p) in self.cells.chunks_exact(width).zip(&self.row_partitions) {
            if keep[p as usize] {
                kept.cells.extend_from_slice(row);
                kept.row_partitions.push(renumbered[p as usize]);
                if let Cell::I64(ts) = row[self.ts] {
                    kept.widen(ts);
                }
            }
        }
        Ok(kept)
    }

    /// (exchange, symbol, first ts, rows) of each partition, in order of first appearance.
    fn partitions(&self) -> Vec<(String, String, i64, usize)> {
        self.partitions
            .iter()
            .map(|(exchange, symbol, _, first, rows)| (exchange.clone(), symbol.clone(), *first, *rows))
            .collect()
    }
}
