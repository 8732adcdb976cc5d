//! Book, trade and ticker envelopes of the symbols an engine holds, decoded and applied in one
//! call: from a line's bytes into its symbol's core with no Python object for a book
//! (`BookDecoder` reads and checks it, `SymbolCore` takes it), and only the `TradeTick` or
//! `TickerTick` for a trade or a ticker. Decoding a tick and handing it through the engine's
//! Python layers cost more than applying it. A line it does not take (an unusual or invalid
//! tick, a symbol it was not given, a line past the size limit) is left unread, for the caller
//! to decode.

use std::collections::HashMap;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

use crate::book::{BookDecoder, Fields};
use crate::symbol_core::SymbolCore;
use crate::tickers::TickerFields;
use crate::trades::TradeFields;

/// A symbol's core and the Python state it calls back.
type Symbol = (Py<SymbolCore>, PyObject);

#[pyclass(module = "fluxforge_native")]
pub struct TickLane {
    decoder: Py<BookDecoder>,
    /// exchange -> symbol -> its state, by the names' UTF-8 bytes.
    symbols: HashMap<Box<[u8]>, HashMap<Box<[u8]>, Symbol>>,
}

#[pymethods]
impl TickLane {
    /// Books, trades and tickers read and checked by `decoder`'s rules.
    #[new]
    fn new(decoder: Py<BookDecoder>) -> Self {
        TickLane { decoder, symbols: HashMap::new() }
    }

    /// Take the ticks of `exchange` `symbol`, names the caller checked, into `state`, whose core
    /// is `core`.
    fn register(&mut self, exchange: &str, symbol: &str, core: Py<SymbolCore>, state: PyObject) {
        self.symbols
            .entry(exchange.as_bytes().into())
            .or_default()
            .insert(symbol.as_bytes().into(), (core, state));
    }

    /// Take no symbol's ticks any more.
    fn clear(&mut self) {
        self.symbols.clear();
    }

    /// Apply `raw` where it is a valid book, trade or ticker of a registered symbol, of at most
    /// `max_bytes`: (the symbol's state, the tick's channel, its event time, why the state refused
    /// it or None). None, with nothing changed, where it is not taken.
    fn apply(
        &self,
        py: Python<'_>,
        raw: &Bound<'_, PyAny>,
        max_bytes: usize,
        out: &Bound<'_, PyAny>,
    ) -> PyResult<Option<(PyObject, Py<PyString>, i64, Option<String>)>> {
        let Ok(raw) = raw.downcast::<PyBytes>() else {
            return Ok(None);
        };
        let bytes = raw.as_bytes();
        if bytes.len() > max_bytes {
            return Ok(None);
        }
        // Borrowed only to read: the cores call back into Python, which may decode with it.
        let decoder = self.decoder.borrow(py);
        let line = if let Some(book) = decoder.valid(bytes) {
            Line::Book(book)
        } else if let Some(trade) = decoder.valid_trade(bytes) {
            Line::Trade(trade)
        } else if let Some(ticker) = decoder.valid_ticker(bytes) {
            Line::Ticker(ticker)
        } else {
            return Ok(None);
        };
        drop(decoder);
        let (exchange, symbol, ts, recv_ts) = match &line {
            Line::Book(fields) => (fields.exchange, fields.symbol, fields.book.ts, fields.book.recv_ts),
            Line::Trade(TradeFields { envelope: e, .. }) | Line::Ticker(TickerFields { envelope: e, .. }) => {
                (e.exchange, e.symbol, e.ts, e.recv_ts)
            }
        };
        let Some((core, state)) = self.symbol(exchange, symbol) else {
            return Ok(None);
        };
        let event_ms = ts.unwrap_or(recv_ts);
        let state = state.clone_ref(py);
        let mut core = core.borrow_mut(py);
        let (channel, reason) = match line {
            Line::Book(Fields { book, .. }) => {
                (intern!(py, "book"), core.process_book(py, book, event_ms, out, state.bind(py))?)
            }
            Line::Trade(trade) => {
                let id = trade.id.map(|id| PyString::new_bound(py, id));
                (intern!(py, "trade"), core.process_trade(py, &trade, id, event_ms, out, state.bind(py))?)
            }
            Line::Ticker(ticker) => {
                (intern!(py, "ticker"), core.process_ticker(py, &ticker, event_ms, out, state.bind(py))?)
            }
        };
        Ok(Some((state, channel.clone().unbind(), event_ms, reason)))
    }

    /// `apply` on `lines[start]`, `lines[start + 1]`, ... until a line it does not take, in one
    /// call (a worker's message holds up to `kafka.batch_max_ticks` lines of one symbol): (the
    /// index of that line, or the length when every line was taken; how many were applied; each
    /// refused line's index and why). The caller decodes the line it stopped at, then goes on
    /// from the next.
    fn apply_lines(
        &self,
        py: Python<'_>,
        lines: &Bound<'_, PyList>,
        start: usize,
        max_bytes: usize,
        out: &Bound<'_, PyAny>,
    ) -> PyResult<(usize, usize, Vec<(usize, String)>)> {
        let mut applied = 0;
        let mut refused = Vec::new();
        for index in start..lines.len() {
            match self.apply(py, &lines.get_item(index)?, max_bytes, out)? {
                None => return Ok((index, applied, refused)),
                Some((.., None)) => applied += 1,
                Some((.., Some(reason))) => refused.push((index, reason)),
            }
        }
        Ok((lines.len(), applied, refused))
    }
}

/// A line the lane takes, read and checked.
enum Line<'a> {
    Book(Fields<'a>),
    Trade(TradeFields<'a>),
    Ticker(TickerFields<'a>),
}

impl TickLane {
    fn symbol(&self, exchange: &[u8], symbol: &[u8]) -> Option<&Symbol> {
        self.symbols.get(exchange).and_then(|symbols| symbols.get(symbol))
    }
}
