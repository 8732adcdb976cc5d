//! Book envelopes decoded in one pass from their JSON bytes, as msgspec would decode them into
//! `BookTick`, and validated (but for their names). Only a valid book of the plain shape is read
//! here (no escapes, integers of up to 18 digits, each field once); for any other input, and
//! every other kind of tick, `decode` gives None and the caller decodes with msgspec, which then
//! also words any error.

use std::collections::HashMap;
use std::ops::Range;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyType};

use crate::envelope::{self, Envelope};
use crate::json::Reader;
use crate::levels::{valid_book, Levels};
use crate::symbol_core::NativeBook;
use crate::tickers::{scan_ticker, TickerFields, PRICES};
use crate::trades::{scan_trade, TradeFields};

/// Names kept as Python strings at most: the distinct exchange ids and symbols of a deployment
/// are far fewer; past it a name is made afresh each time. Longer names are never kept: no valid
/// one is (`decoding.MAX_SYMBOL_LEN`), so refused input cannot fill the cache with large ones.
const MAX_NAMES: usize = 100_000;
const MAX_KEPT_NAME_BYTES: usize = 128;

/// A book envelope's names and the book they name.
pub(crate) struct Fields<'a> {
    pub exchange: &'a [u8], // not yet checked to be UTF-8: `BookDecoder::name` does
    pub symbol: &'a [u8],
    pub book: NativeBook,
}

/// Makes `book_type` (BookTick) objects from valid book envelopes.
#[pyclass(module = "fluxforge_native")]
pub struct BookDecoder {
    book_type: Py<PyType>,
    names: HashMap<Box<[u8]>, Py<PyString>>,
    /// Where `ts` and `recv_ts` must lie, ms.
    times: Range<i64>,
    /// Where every price and size must lie (`book_ok`).
    quantities: Range<f64>,
}

#[pymethods]
impl BookDecoder {
    /// `times`: [low, high) of `ts` and `recv_ts`; `quantities`: [low, high) of prices and sizes.
    #[new]
    fn new(book_type: Py<PyType>, times: (i64, i64), quantities: (f64, f64)) -> Self {
        BookDecoder {
            book_type,
            names: HashMap::new(),
            times: times.0..times.1,
            quantities: quantities.0..quantities.1,
        }
    }

    /// The book tick of `raw` (its fields in `BookTick`'s order), or None where msgspec must
    /// decode it: another shape, or a book that is not valid (its names are the caller's to check).
    fn decode(&mut self, py: Python<'_>, raw: &Bound<'_, PyAny>) -> PyResult<Option<PyObject>> {
        let Ok(bytes) = raw.downcast::<PyBytes>() else {
            return Ok(None);
        };
        let Some(Fields { exchange, symbol, book }) = self.valid(bytes.as_bytes()) else {
            return Ok(None);
        };
        let (Some(exchange), Some(symbol)) = (self.name(py, exchange), self.name(py, symbol)) else {
            return Ok(None); // not UTF-8: msgspec refuses it in its words
        };
        let args = (
            exchange,
            symbol,
            book.recv_ts,
            book.ts,
            Levels { pairs: book.bids },
            Levels { pairs: book.asks },
            book.seq,
        );
        Ok(Some(self.book_type.bind(py).call1(args)?.unbind()))
    }
}

impl BookDecoder {
    /// The fields of `bytes` where they are a valid book of the plain shape (names not checked).
    pub(crate) fn valid<'a>(&self, bytes: &'a [u8]) -> Option<Fields<'a>> {
        let fields = scan(bytes)?;
        let book = &fields.book;
        let valid = self.times_ok(book.recv_ts, book.ts) && valid_book(&book.bids, &book.asks, &self.quantities);
        valid.then_some(fields)
    }

    /// The fields of `bytes` where they are a valid trade of the plain shape (names not checked).
    pub(crate) fn valid_trade<'a>(&self, bytes: &'a [u8]) -> Option<TradeFields<'a>> {
        let trade = scan_trade(bytes)?;
        let quantities = &self.quantities;
        let valid = self.times_ok(trade.envelope.recv_ts, trade.envelope.ts)
            && quantities.contains(&trade.price)
            && quantities.contains(&trade.amount);
        valid.then_some(trade)
    }

    /// The fields of `bytes` where they are a valid ticker of the plain shape (names not checked):
    /// prices within the quantities, sizes and volumes from 0 to their top, bid not above ask.
    pub(crate) fn valid_ticker<'a>(&self, bytes: &'a [u8]) -> Option<TickerFields<'a>> {
        let ticker = scan_ticker(bytes)?;
        let quantities = &self.quantities;
        let sizes = 0.0..quantities.end;
        let values_ok = ticker.values.iter().zip(PRICES).all(|(value, price)| {
            value.is_none_or(|value| if price { quantities.contains(&value) } else { sizes.contains(&value) })
        });
        let uncrossed = match ticker.values {
            [Some(bid), Some(ask), ..] => bid <= ask,
            _ => true,
        };
        let valid = self.times_ok(ticker.envelope.recv_ts, ticker.envelope.ts) && values_ok && uncrossed;
        valid.then_some(ticker)
    }

    /// `recv_ts`, and `ts` where given, lie within the times a tick may have.
    fn times_ok(&self, recv_ts: i64, ts: Option<i64>) -> bool {
        self.times.contains(&recv_ts) && ts.is_none_or(|ts| self.times.contains(&ts))
    }

    /// The name `bytes` spell, or None where they are not UTF-8. A kept name was checked once.
    fn name(&mut self, py: Python<'_>, bytes: &[u8]) -> Option<Py<PyString>> {
        if let Some(name) = self.names.get(bytes) {
            return Some(name.clone_ref(py));
        }
        let name = PyString::new_bound(py, std::str::from_utf8(bytes).ok()?).unbind();
        if self.names.len() < MAX_NAMES && bytes.len() <= MAX_KEPT_NAME_BYTES {
            self.names.insert(bytes.into(), name.clone_ref(py));
        }
        Some(name)
    }
}

fn scan(bytes: &[u8]) -> Option<Fields<'_>> {
    const SEQ: u32 = 32;
    const BIDS: u32 = 64;
    const ASKS: u32 = 128;
    let mut envelope = Envelope::new(b"book");
    let (mut seq, mut bids, mut asks) = (None, Vec::new(), Vec::new());
    let seen = Reader::new(bytes).object_fields(|key, r| match envelope.field(key, r)? {
        0 => Some(match key {
            b"seq" => {
                seq = if r.null() { None } else { Some(r.int()?) };
                SEQ
            }
            b"bids" => {
                bids = r.levels().ok()?;
                BIDS
            }
            b"asks" => {
                asks = r.levels().ok()?;
                ASKS
            }
            _ => 0,
        }),
        common => Some(common),
    })?;
    let required = envelope::REQUIRED | BIDS | ASKS;
    (seen & required == required).then_some(Fields {
        exchange: envelope.exchange,
        symbol: envelope.symbol,
        book: NativeBook { recv_ts: envelope.recv_ts, ts: envelope.ts, seq, bids, asks },
    })
}
