//! Parquet files encoded from Arrow columns, read in place through the Arrow C data interface.
//!
//! pyarrow's writer costs ~28 us a column chunk in its own structures, compressed or not: a
//! 30-row file of the 105 HF columns took ~3 ms, which bounded the sink (README "Performance").
//! The columns are bool, ints, floats, strings, timestamps and dates, and lists of them (the HF
//! table's raw levels): every table of the dataset. The footer keeps pyarrow's `ARROW:schema`,
//! which the caller passes, so readers get the same Arrow types back.

use std::ffi::{c_char, c_void, CStr};
use std::sync::Arc;

use parquet::basic::{Compression, GzipLevel, LogicalType, Repetition, TimeUnit, Type as Physical, ZstdLevel};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DataType, DoubleType, FloatType, Int32Type, Int64Type};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::{SerializedColumnWriter, SerializedFileWriter};
use parquet::schema::types::{ColumnPath, Type};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCapsule};

/// `struct ArrowSchema` of the C data interface.
#[repr(C)]
struct ArrowSchema {
    format: *const c_char,
    name: *const c_char,
    metadata: *const c_char,
    flags: i64,
    n_children: i64,
    children: *mut *mut ArrowSchema,
    dictionary: *mut ArrowSchema,
    release: Option<unsafe extern "C" fn(*mut ArrowSchema)>,
    private_data: *mut c_void,
}

/// `struct ArrowArray` of the C data interface.
#[repr(C)]
struct ArrowArray {
    length: i64,
    null_count: i64,
    offset: i64,
    n_buffers: i64,
    n_children: i64,
    buffers: *mut *const c_void,
    children: *mut *mut ArrowArray,
    dictionary: *mut ArrowArray,
    release: Option<unsafe extern "C" fn(*mut ArrowArray)>,
    private_data: *mut c_void,
}

const NULLABLE: i64 = 2;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Utf8,
    LargeUtf8,
    Date32,
    Timestamp(TimeUnit, bool),
}

impl Kind {
    fn of(format: &str) -> Option<Kind> {
        Some(match format {
            "b" => Kind::Bool,
            "c" => Kind::Int8,
            "s" => Kind::Int16,
            "i" => Kind::Int32,
            "l" => Kind::Int64,
            "f" => Kind::Float32,
            "g" => Kind::Float64,
            "u" => Kind::Utf8,
            "U" => Kind::LargeUtf8,
            "tdD" => Kind::Date32,
            _ => {
                let (unit, zone) = format.strip_prefix("ts")?.split_once(':')?;
                let unit = match unit {
                    "m" => TimeUnit::MILLIS,
                    "u" => TimeUnit::MICROS,
                    "n" => TimeUnit::NANOS,
                    _ => return None,
                };
                Kind::Timestamp(unit, !zone.is_empty())
            }
        })
    }

    /// The Parquet column of this kind, as pyarrow lays it out.
    fn column(self, name: &str, nullable: bool) -> parquet::errors::Result<Type> {
        let (physical, logical) = match self {
            Kind::Bool => (Physical::BOOLEAN, None),
            Kind::Int8 => (Physical::INT32, Some(integer(8))),
            Kind::Int16 => (Physical::INT32, Some(integer(16))),
            Kind::Int32 => (Physical::INT32, None),
            Kind::Int64 => (Physical::INT64, None),
            Kind::Float32 => (Physical::FLOAT, None),
            Kind::Float64 => (Physical::DOUBLE, None),
            Kind::Utf8 | Kind::LargeUtf8 => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
            Kind::Date32 => (Physical::INT32, Some(LogicalType::Date)),
            Kind::Timestamp(unit, utc) => (
                Physical::INT64,
                Some(LogicalType::Timestamp { is_adjusted_to_u_t_c: utc, unit }),
            ),
        };
        let repetition = if nullable { Repetition::OPTIONAL } else { Repetition::REQUIRED };
        Type::primitive_type_builder(name, physical)
            .with_repetition(repetition)
            .with_logical_type(logical)
            .build()
    }
}

fn integer(bit_width: i8) -> LogicalType {
    LogicalType::Integer { bit_width, is_signed: true }
}

/// A column's shape: flat values, or lists (of lists) of them.
#[derive(PartialEq)]
enum Node {
    Leaf(Kind),
    List { size: ListSize, item: Box<Field> },
}

#[derive(Clone, Copy, PartialEq)]
enum ListSize {
    Offsets32,
    Offsets64,
    Fixed(usize),
}

#[derive(PartialEq)]
struct Field {
    name: String,
    nullable: bool,
    node: Node,
}

impl Field {
    fn read(schema: &ArrowSchema) -> Result<Field, String> {
        // SAFETY: a live ArrowSchema's strings and children are valid while it is.
        let name = if schema.name.is_null() {
            String::new()
        } else {
            unsafe { CStr::from_ptr(schema.name) }.to_string_lossy().into_owned()
        };
        let format = unsafe { CStr::from_ptr(schema.format) }.to_string_lossy().into_owned();
        let size = match format.as_str() {
            "+l" => Some(ListSize::Offsets32),
            "+L" => Some(ListSize::Offsets64),
            _ => format.strip_prefix("+w:").and_then(|n| n.parse().ok()).map(ListSize::Fixed),
        };
        let node = match (size, Kind::of(&format)) {
            _ if !schema.dictionary.is_null() => None,
            (Some(size), _) if schema.n_children == 1 => {
                let item = Field::read(unsafe { &**schema.children })?;
                Some(Node::List { size, item: Box::new(item) })
            }
            (None, Some(kind)) => Some(Node::Leaf(kind)),
            _ => None,
        };
        let node = node.ok_or_else(|| {
            format!(
                "column {name:?} has Arrow format {format:?}: only bool, int, float, string, date and timestamp columns, and lists of them, are written"
            )
        })?;
        Ok(Field { name, nullable: schema.flags & NULLABLE != 0, node })
    }

    fn leaf(&self) -> Kind {
        match &self.node {
            Node::Leaf(kind) => *kind,
            Node::List { item, .. } => item.leaf(),
        }
    }

    /// The greatest definition and repetition levels of its values.
    fn max_levels(&self) -> (i16, i16) {
        let own = self.nullable as i16;
        match &self.node {
            Node::Leaf(_) => (own, 0),
            Node::List { item, .. } => {
                let (definition, repetition) = item.max_levels();
                (own + 1 + definition, 1 + repetition)
            }
        }
    }

    /// The Parquet type, as pyarrow lays it out (a list is a LIST group of a repeated group `list`
    /// holding its `element`).
    fn parquet_type(&self, name: &str) -> parquet::errors::Result<Type> {
        match &self.node {
            Node::Leaf(kind) => kind.column(name, self.nullable),
            Node::List { item, .. } => {
                let list = Type::group_type_builder("list")
                    .with_repetition(Repetition::REPEATED)
                    .with_fields(vec![Arc::new(item.parquet_type("element")?)])
                    .build()?;
                let repetition = if self.nullable { Repetition::OPTIONAL } else { Repetition::REQUIRED };
                Type::group_type_builder(name)
                    .with_repetition(repetition)
                    .with_logical_type(Some(LogicalType::List))
                    .with_fields(vec![Arc::new(list)])
                    .build()
            }
        }
    }
}

/// The struct a capsule of the C data interface holds, checked by the capsule's name.
fn capsule<'a, T>(capsule: &'a Bound<'_, PyCapsule>, name: &str) -> PyResult<&'a T> {
    match capsule.name()? {
        // SAFETY: a capsule named so holds a struct of that kind, alive as long as the capsule.
        Some(found) if found.to_bytes() == name.as_bytes() => Ok(unsafe { &*(capsule.pointer() as *const T) }),
        _ => Err(PyTypeError::new_err(format!("expected an {name} capsule of the Arrow C data interface"))),
    }
}

fn fields(schema: &Bound<'_, PyCapsule>) -> PyResult<Vec<Field>> {
    let schema: &ArrowSchema = capsule(schema, "arrow_schema")?;
    if schema.release.is_none() {
        return Err(PyValueError::new_err("the schema was released"));
    }
    let format = unsafe { CStr::from_ptr(schema.format) }.to_string_lossy();
    if format != "+s" {
        return Err(PyTypeError::new_err(format!("expected a schema of columns (a struct), got format {format:?}")));
    }
    (0..schema.n_children as usize)
        .map(|i| Field::read(unsafe { &**schema.children.add(i) }).map_err(PyTypeError::new_err))
        .collect()
}

/// One column of one batch: raw pointers into buffers its batch's capsule keeps alive. `values`
/// is a list's offsets (none for a fixed size), `data` a string's bytes, `item` a list's values.
struct Column {
    offset: usize,
    validity: *const u8,
    values: *const c_void,
    data: *const u8,
    item: Option<Box<Column>>,
}

impl Column {
    /// `array` as a column of `field`, its offset moved by `parent_offset` (a batch's slice);
    /// refuses an array without the buffers and children of the field's layout.
    fn read(array: &ArrowArray, field: &Field, parent_offset: usize) -> Result<Column, String> {
        let (buffers, children) = match &field.node {
            Node::Leaf(Kind::Utf8 | Kind::LargeUtf8) => (3, 0),
            Node::Leaf(_) => (2, 0),
            Node::List { size: ListSize::Fixed(_), .. } => (1, 1),
            Node::List { .. } => (2, 1),
        };
        if array.n_buffers != buffers || array.n_children != children || array.offset < 0 || array.length < 0 {
            return Err(format!("column {:?} is not laid out as its type", field.name));
        }
        let buffer = |k: usize| {
            if (k as i64) < array.n_buffers {
                // SAFETY: the array has `n_buffers` buffers.
                unsafe { *array.buffers.add(k) }
            } else {
                std::ptr::null()
            }
        };
        let (data, item) = match &field.node {
            Node::Leaf(Kind::Utf8 | Kind::LargeUtf8) => (buffer(2) as *const u8, None),
            Node::Leaf(_) => (std::ptr::null(), None),
            // SAFETY: a list array has its values as its one child.
            Node::List { item, .. } => {
                (std::ptr::null(), Some(Box::new(Column::read(unsafe { &**array.children }, item, 0)?)))
            }
        };
        let fixed = matches!(field.node, Node::List { size: ListSize::Fixed(_), .. });
        Ok(Column {
            offset: parent_offset + array.offset as usize,
            validity: if array.null_count == 0 { std::ptr::null() } else { buffer(0) as *const u8 },
            values: if fixed { std::ptr::null() } else { buffer(1) },
            data,
            item,
        })
    }

    fn leaf(&self) -> &Column {
        self.item.as_deref().map_or(self, Column::leaf)
    }

    fn valid(&self, i: usize) -> bool {
        self.validity.is_null() || bit(self.validity, i)
    }
}

/// The batches' columns, moved to a thread without the GIL; the caller's capsules own the memory.
struct Batches {
    lengths: Vec<usize>,
    columns: Vec<Vec<Column>>,
}

// SAFETY: the buffers are immutable Arrow memory that outlives the call (see `Column`).
unsafe impl Send for Batches {}

/// An exported batch (`__arrow_c_array__`) and the rows of it to write: (offset, length).
type Piece<'py> = (Bound<'py, PyCapsule>, Bound<'py, PyCapsule>, usize, usize);

fn batches(exported: &[Piece<'_>], fields: &[Field]) -> PyResult<Batches> {
    let mut out = Batches { lengths: Vec::new(), columns: Vec::new() };
    for (index, (schema, array, start, rows)) in exported.iter().enumerate() {
        if self::fields(schema)? != fields {
            return Err(PyValueError::new_err(format!("batch {index} does not have the table's schema")));
        }
        let batch: &ArrowArray = capsule(array, "arrow_array")?;
        if batch.release.is_none() || batch.n_children as usize != fields.len() || batch.offset < 0 || batch.length < 0 {
            return Err(PyValueError::new_err(format!("batch {index} does not have the schema's columns")));
        }
        // Checked sums: the bounds come from the caller, and a wrapped one would pass the checks.
        let bounds = start
            .checked_add(*rows)
            .filter(|&end| end <= batch.length as usize)
            .and_then(|_| (batch.offset as usize).checked_add(*start))
            .and_then(|offset| Some((offset, offset.checked_add(*rows)?)));
        let Some((offset, end)) = bounds else {
            return Err(PyValueError::new_err(format!(
                "rows {start}..{} are not all in batch {index} of {} rows",
                start.saturating_add(*rows),
                batch.length
            )));
        };
        let length = *rows;
        let columns = fields
            .iter()
            .enumerate()
            .map(|(i, field)| {
                // SAFETY: the batch has `n_children` columns.
                let child = unsafe { &**batch.children.add(i) };
                if (child.length as usize) < end {
                    return Err(format!("column {:?} is shorter than its batch", field.name));
                }
                Column::read(child, field, offset)
            })
            .collect::<Result<_, _>>()
            .map_err(PyValueError::new_err)?;
        out.lengths.push(length);
        out.columns.push(columns);
    }
    Ok(out)
}

fn bit(bitmap: *const u8, i: usize) -> bool {
    // SAFETY: `i` lies within the array the bitmap belongs to.
    unsafe { *bitmap.add(i >> 3) >> (i & 7) & 1 == 1 }
}

/// One column's values with their definition and repetition levels (Parquet's record shredding).
struct Shredded<'a, T> {
    column: &'a str,
    values: Vec<T>,
    definitions: Vec<i16>,
    repetitions: Vec<i16>,
}

impl<T> Shredded<'_, T> {
    /// Walks element `index` of `column`, whose repetition level is `repetition` (that of the
    /// list it starts, else of the innermost list it is in), `definition` its ancestors' levels,
    /// `depth` the lists around it.
    #[allow(clippy::too_many_arguments)]
    fn walk(
        &mut self,
        field: &Field,
        column: &Column,
        index: usize,
        repetition: i16,
        definition: i16,
        depth: i16,
        value: &impl Fn(usize) -> T,
    ) -> Result<(), String> {
        let i = column.offset + index;
        if !column.valid(i) {
            if !field.nullable {
                return Err(format!("column {:?} is not nullable but holds a null", self.column));
            }
            self.definitions.push(definition);
            self.repetitions.push(repetition);
            return Ok(());
        }
        let definition = definition + field.nullable as i16;
        match &field.node {
            Node::Leaf(_) => {
                self.values.push(value(i));
                self.definitions.push(definition);
                self.repetitions.push(repetition);
            }
            Node::List { size, item } => {
                let child = column.item.as_deref().expect("a list column has its values");
                // SAFETY: `i` is an element of the list array, whose offsets have its size's type.
                let (first, last) = match *size {
                    ListSize::Offsets32 => {
                        let offsets = column.values as *const i32;
                        unsafe { (*offsets.add(i) as usize, *offsets.add(i + 1) as usize) }
                    }
                    ListSize::Offsets64 => {
                        let offsets = column.values as *const i64;
                        unsafe { (*offsets.add(i) as usize, *offsets.add(i + 1) as usize) }
                    }
                    ListSize::Fixed(n) => (i * n, (i + 1) * n),
                };
                if first == last {
                    self.definitions.push(definition);
                    self.repetitions.push(repetition);
                }
                for element in first..last {
                    let level = if element == first { repetition } else { depth + 1 };
                    self.walk(item, child, element, level, definition + 1, depth + 1, value)?;
                }
            }
        }
        Ok(())
    }
}

/// Rows `start..end` of one column written to its chunk; `value` reads the leaf array's element.
fn put<T: DataType>(
    writer: &mut SerializedColumnWriter<'_>,
    field: &Field,
    column: &Column,
    start: usize,
    end: usize,
    value: impl Fn(usize) -> T::T,
) -> Result<(), String> {
    let mut shredded = Shredded {
        column: &field.name,
        values: Vec::with_capacity(end - start),
        definitions: Vec::new(),
        repetitions: Vec::new(),
    };
    for row in start..end {
        shredded.walk(field, column, row, 0, 0, 0, &value)?;
    }
    let (max_definition, max_repetition) = field.max_levels();
    let definitions = (max_definition > 0).then_some(&shredded.definitions[..]);
    let repetitions = (max_repetition > 0).then_some(&shredded.repetitions[..]);
    writer
        .typed::<T>()
        .write_batch(&shredded.values, definitions, repetitions)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn write_piece(
    writer: &mut SerializedColumnWriter<'_>,
    field: &Field,
    column: &Column,
    start: usize,
    end: usize,
) -> Result<(), String> {
    let leaf = column.leaf();
    let values = leaf.values;
    // SAFETY (each read below): `i` is an element of the leaf array, whose buffers have its kind's layout.
    match field.leaf() {
        Kind::Bool => put::<BoolType>(writer, field, column, start, end, |i| bit(values as *const u8, i)),
        Kind::Int8 => {
            put::<Int32Type>(writer, field, column, start, end, |i| unsafe { *(values as *const i8).add(i) } as i32)
        }
        Kind::Int16 => {
            put::<Int32Type>(writer, field, column, start, end, |i| unsafe { *(values as *const i16).add(i) } as i32)
        }
        Kind::Int32 | Kind::Date32 => {
            put::<Int32Type>(writer, field, column, start, end, |i| unsafe { *(values as *const i32).add(i) })
        }
        Kind::Int64 | Kind::Timestamp(..) => {
            put::<Int64Type>(writer, field, column, start, end, |i| unsafe { *(values as *const i64).add(i) })
        }
        Kind::Float32 => {
            put::<FloatType>(writer, field, column, start, end, |i| unsafe { *(values as *const f32).add(i) })
        }
        Kind::Float64 => {
            put::<DoubleType>(writer, field, column, start, end, |i| unsafe { *(values as *const f64).add(i) })
        }
        Kind::Utf8 => put::<ByteArrayType>(writer, field, column, start, end, string_at::<i32>(leaf)),
        Kind::LargeUtf8 => put::<ByteArrayType>(writer, field, column, start, end, string_at::<i64>(leaf)),
    }
}

/// Reads element `i` of a string array whose offsets are of type `O`.
fn string_at<O: Copy + TryInto<usize>>(column: &Column) -> impl Fn(usize) -> ByteArray {
    let (offsets, data) = (column.values as *const O, column.data);
    // SAFETY: `i` is an element of the array; its offsets and data are an Arrow string array's.
    move |i| unsafe {
        let at = |k: usize| (*offsets.add(k)).try_into().unwrap_or(0);
        let (from, to) = (at(i), at(i + 1));
        if to <= from {
            return ByteArray::from(Vec::new()); // the data buffer may be null when every string is empty
        }
        ByteArray::from(std::slice::from_raw_parts(data.add(from), to - from).to_vec())
    }
}

fn codec(name: &str) -> PyResult<Compression> {
    Ok(match name {
        "zstd" => Compression::ZSTD(ZstdLevel::default()),
        "lz4" => Compression::LZ4_RAW,
        "snappy" => Compression::SNAPPY,
        "gzip" => Compression::GZIP(GzipLevel::default()),
        "none" => Compression::UNCOMPRESSED,
        _ => return Err(PyValueError::new_err(format!("unknown Parquet compression {name:?}"))),
    })
}

/// Rows in groups of `row_group_size`, each group's columns written piece by piece over the batches.
fn encode(encoder: &ParquetEncoder, batches: &Batches, metadata: Vec<(String, String)>) -> Result<Vec<u8>, String> {
    let (fields, row_group_size) = (&encoder.fields, encoder.row_group_size);
    let mut out = Vec::new();
    let mut file = SerializedFileWriter::new(&mut out, Arc::clone(&encoder.schema), Arc::clone(&encoder.properties))
        .map_err(|e| e.to_string())?;
    for (key, value) in metadata {
        file.append_key_value_metadata(KeyValue::new(key, value));
    }
    let total: usize = batches.lengths.iter().sum();
    let mut first = 0;
    loop {
        // As pyarrow: a table without rows is one empty row group.
        let last = total.min(first + row_group_size);
        let mut group = file.next_row_group().map_err(|e| e.to_string())?;
        let mut index = 0;
        while let Some(mut writer) = group.next_column().map_err(|e| e.to_string())? {
            let mut batch_start = 0;
            for (length, columns) in batches.lengths.iter().zip(&batches.columns) {
                let (start, end) = (first.max(batch_start), last.min(batch_start + length));
                if start < end {
                    write_piece(&mut writer, &fields[index], &columns[index], start - batch_start, end - batch_start)?;
                }
                batch_start += length;
            }
            writer.close().map_err(|e| e.to_string())?;
            index += 1;
        }
        group.close().map_err(|e| e.to_string())?;
        first = last;
        if first >= total {
            break;
        }
    }
    file.close().map_err(|e| e.to_string())?;
    Ok(out)
}

/// The Parquet files of one table: its columns, Parquet schema and writer properties are worked
/// out once (re-read for every file they were ~7 % of encoding a 30-row HF file), then `encode`
/// writes each file; one encoder serves several threads at once.
#[pyclass(module = "fluxforge_native", frozen)]
pub struct ParquetEncoder {
    fields: Vec<Field>,
    schema: Arc<Type>,
    properties: Arc<WriterProperties>,
    row_group_size: usize,
}

#[pymethods]
impl ParquetEncoder {
    /// Files of `schema` (an `__arrow_c_schema__` capsule); `dictionary` and `statistics` name the
    /// columns given dictionary pages and chunk statistics.
    #[new]
    #[pyo3(signature = (schema, *, compression, row_group_size, dictionary, statistics))]
    fn new(
        schema: &Bound<'_, PyCapsule>,
        compression: &str,
        row_group_size: usize,
        dictionary: Vec<String>,
        statistics: Vec<String>,
    ) -> PyResult<Self> {
        if row_group_size == 0 {
            return Err(PyValueError::new_err("row_group_size must be positive"));
        }
        let fields = fields(schema)?;
        let columns = fields
            .iter()
            .map(|f| f.parquet_type(&f.name).map(Arc::new))
            .collect::<parquet::errors::Result<Vec<_>>>()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let schema = Type::group_type_builder("schema")
            .with_fields(columns)
            .build()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let mut properties = WriterProperties::builder()
            .set_compression(codec(compression)?)
            .set_dictionary_enabled(false)
            .set_statistics_enabled(EnabledStatistics::None)
            .set_statistics_truncate_length(None) // exact minima and maxima, as pyarrow writes them
            .set_offset_index_disabled(true)
            .set_max_row_group_size(row_group_size)
            // A file's pairs are appended to these; the list is written even when empty, as it
            // was before the encoder was made once per table, so such a file stays the same.
            .set_key_value_metadata(Some(Vec::new()));
        for name in dictionary {
            properties = properties.set_column_dictionary_enabled(ColumnPath::from(name), true);
        }
        for name in statistics {
            properties = properties.set_column_statistics_enabled(ColumnPath::from(name), EnabledStatistics::Chunk);
        }
        Ok(ParquetEncoder {
            fields,
            schema: Arc::new(schema),
            properties: Arc::new(properties.build()),
            row_group_size,
        })
    }

    /// The Parquet file of `batches`, each what `__arrow_c_array__` gives of a batch of the
    /// encoder's schema with the rows of it to write (offset, length: a batch shared by several
    /// files is exported once); `metadata` is the footer's key-value metadata, in order.
    fn encode<'py>(
        &self,
        py: Python<'py>,
        batches: Vec<Piece<'py>>,
        metadata: Vec<(String, String)>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let data = self::batches(&batches, &self.fields)?;
        let encoded = py.allow_threads(move || encode(self, &data, metadata));
        encoded.map(|bytes| PyBytes::new_bound(py, &bytes)).map_err(PyValueError::new_err)
    }
}
