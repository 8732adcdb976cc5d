//! The per-tick part of a symbol's state (`fluxforge_common.features.symbol_state`): which ticks
//! are late or repeated, the symbol's event time, the ticks held for the allowed lateness and
//! the order they are applied in, and the book. A book update is applied here whole, given as a
//! Python `BookTick` or, from `TickLane`, as the values it read (held so until it is applied, and
//! made a `BookTick` only when the held ticks are read; `TickLane`'s trades come as `TradeTick`s
//! made here); the rest of a tick's work, and closing
//! an interval, are the Python state's (`_on_trade`, `_on_ticker`, `_close_interval`), called
//! back at the point the tick or the time reaches them, with the book as it stands (this object
//! is borrowed while it calls back).

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple, PyType};

use crate::flows::IntervalFlows;
use crate::levels::Levels;
use crate::tickers::TickerFields;
use crate::trades::TradeFields;

/// Trade ids remembered to refuse a repeat, the most recent.
pub(crate) const RECENT_TRADE_IDS: usize = 100;
/// How far a tick without `ts` (stamped by the receive clock) may run ahead of its symbol's
/// exchange-stamped time before it moves that time: more than a feed's latency, so it never makes
/// a stamped tick late, and a bound on how long it waits while the stamped channels are silent.
pub(crate) const RECEIVE_CLOCK_LEAD_MS: i64 = 2_000;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Book,
    Trade,
    Ticker,
}

/// A book update the kernel decoded itself (`TickLane`): a `BookTick` but for its names, which
/// are its symbol's.
pub(crate) struct NativeBook {
    pub recv_ts: i64,
    pub ts: Option<i64>,
    pub seq: Option<i64>,
    pub bids: Vec<(f64, f64)>,
    pub asks: Vec<(f64, f64)>,
}

/// A tick held for the allowed lateness: the Python tick, or a book the kernel decoded.
enum Held {
    Tick(PyObject),
    Book(Box<NativeBook>),
}

/// A symbol's event time, held ticks, duplicate checks and book.
#[pyclass(module = "fluxforge_native")]
pub struct SymbolCore {
    exchange: Py<PyString>,
    symbol: Py<PyString>,
    book_type: Py<PyType>,
    trade_type: Py<PyType>,
    ticker_type: Py<PyType>,
    interval_ms: i64,
    lateness_ms: i64,
    max_levels: usize,
    tight_spread: f64,
    flows: Py<IntervalFlows>,
    #[pyo3(get, set)]
    bids: Option<Py<Levels>>,
    #[pyo3(get, set)]
    asks: Option<Py<Levels>>,
    #[pyo3(get, set)]
    last_mid: f64,
    #[pyo3(get, set)]
    last_book_ms: Option<i64>,
    /// Book sequence numbers are JSON integers of up to 64 bits, signed or not.
    last_seq: Option<i128>,
    #[pyo3(get, set)]
    last_seq_ms: Option<i64>,
    /// The latest exchange-stamped event time once a stamped tick was accepted (`stamped`).
    #[pyo3(get, set)]
    last_event_ms: Option<i64>,
    #[pyo3(get, set)]
    stamped: bool,
    #[pyo3(get, set)]
    next_ms: Option<i64>,
    #[pyo3(get, set)]
    watermark_ms: Option<i64>,
    trade_ids: VecDeque<TradeId>,
    trade_id_set: HashSet<TradeId, BuildHasherDefault<PythonHash>>,
    /// (event time, tick), sorted by event time, ties in arrival order.
    held: VecDeque<(i64, Held)>,
}

#[pymethods]
impl SymbolCore {
    /// The symbol's names; `book_type`, `trade_type` and `ticker_type` tell the ticks apart (and
    /// make the lane's trades and tickers); `flows` is the state's interval flows, which book
    /// updates fold into.
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (exchange, symbol, book_type, trade_type, ticker_type, interval_ms, lateness_ms, max_levels, tight_spread, flows))]
    fn new(
        exchange: Py<PyString>,
        symbol: Py<PyString>,
        book_type: Py<PyType>,
        trade_type: Py<PyType>,
        ticker_type: Py<PyType>,
        interval_ms: i64,
        lateness_ms: i64,
        max_levels: usize,
        tight_spread: f64,
        flows: Py<IntervalFlows>,
    ) -> Self {
        SymbolCore {
            exchange,
            symbol,
            book_type,
            trade_type,
            ticker_type,
            interval_ms,
            lateness_ms,
            max_levels,
            tight_spread,
            flows,
            bids: None,
            asks: None,
            last_mid: 0.0,
            last_book_ms: None,
            last_seq: None,
            last_seq_ms: None,
            last_event_ms: None,
            stamped: false,
            next_ms: None,
            watermark_ms: None,
            trade_ids: VecDeque::with_capacity(RECENT_TRADE_IDS),
            trade_id_set: HashSet::with_capacity_and_hasher(RECENT_TRADE_IDS, Default::default()),
            held: VecDeque::new(),
        }
    }

    /// `SymbolState.process`: accept one validated tick at `event_ms`, or say why not (late,
    /// a repeat). `state` is the Python state, called back to apply trades and tickers and to
    /// close intervals.
    fn process(
        &mut self,
        tick: &Bound<'_, PyAny>,
        event_ms: i64,
        out: &Bound<'_, PyAny>,
        state: &Bound<'_, PyAny>,
    ) -> PyResult<Option<String>> {
        let py = tick.py();
        if let Some(reason) = self.late(py, event_ms, out)? {
            return Ok(Some(reason));
        }
        let kind = self.kind(tick);
        if kind == Kind::Book {
            let seq = sequence(&tick.getattr(intern!(py, "seq"))?)?;
            if let Some(reason) = self.book_in_order(py, seq, event_ms, out)? {
                return Ok(Some(reason));
            }
        } else if kind == Kind::Trade {
            let id = tick.getattr(intern!(py, "id"))?;
            if !id.is_none() {
                let id = TradeId::of(id.downcast_into::<PyString>()?)?;
                if self.trade_id_set.contains(&id) {
                    count(out, intern!(py, "duplicates"))?;
                    return Ok(Some(format!("duplicate trade: id {} already applied", id.id)));
                }
                self.remember(py, id);
            }
        }
        let stamped = !tick.getattr(intern!(py, "ts"))?.is_none();
        self.take(Held::Tick(tick.clone().unbind()), stamped, event_ms, out, state)?;
        Ok(None)
    }

    /// `SymbolState.watermark`: apply the held ticks before `watermark_ms`, close the intervals it
    /// ends; one at or below an earlier watermark changes nothing.
    fn watermark(&mut self, watermark_ms: i64, out: &Bound<'_, PyAny>, state: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = out.py();
        if self.watermark_ms.is_some_and(|last| watermark_ms <= last) {
            return Ok(());
        }
        self.watermark_ms = Some(watermark_ms);
        self.apply_held_before(watermark_ms, out, state)?;
        if self.next_ms.is_some_and(|next_ms| watermark_ms >= next_ms) {
            let hf = out.getattr(intern!(py, "hf"))?;
            let before = hf.len()?;
            self.advance(watermark_ms, out, state)?;
            let closed = hf.len()? - before;
            let rows: usize = out.getattr(intern!(py, "watermark_rows"))?.extract()?;
            out.setattr(intern!(py, "watermark_rows"), rows + closed)?;
        }
        Ok(())
    }

    /// The held ticks as (event time, tick), in the order they will be applied.
    #[getter]
    fn get_held<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let mut held = Vec::with_capacity(self.held.len());
        for (held_ms, tick) in &self.held {
            let tick = match tick {
                Held::Tick(tick) => tick.clone_ref(py),
                Held::Book(book) => self.book_tick(py, book)?,
            };
            held.push(PyTuple::new_bound(py, [held_ms.into_py(py), tick]));
        }
        Ok(PyList::new_bound(py, held))
    }

    /// Hold exactly `ticks`, (event time, tick) in the order `held` gives them.
    #[setter]
    fn set_held(&mut self, ticks: Vec<(i64, PyObject)>) {
        self.held = ticks.into_iter().map(|(held_ms, tick)| (held_ms, Held::Tick(tick))).collect();
    }

    /// The sequence number of the last accepted book, or None.
    #[getter]
    fn get_last_seq(&self, py: Python<'_>) -> PyObject {
        // Through i64 or u64: an i128 goes through Python calls in the stable ABI.
        match self.last_seq {
            None => py.None(),
            Some(seq) => match i64::try_from(seq) {
                Ok(seq) => seq.into_py(py),
                Err(_) => u64::try_from(seq).expect("a seq is held in 64 bits").into_py(py),
            },
        }
    }

    #[setter]
    fn set_last_seq(&mut self, seq: &Bound<'_, PyAny>) -> PyResult<()> {
        self.last_seq = sequence(seq)?;
        Ok(())
    }

    /// The ids of the most recent trades, oldest first.
    fn trade_ids<'py>(&self, py: Python<'py>) -> Bound<'py, PyList> {
        PyList::new_bound(py, self.trade_ids.iter().map(|id| id.id.clone_ref(py)))
    }

    /// Remember `ids` (oldest first, as `trade_ids` gave them) in place of those remembered: the
    /// last `RECENT_TRADE_IDS` of them.
    fn remember_trade_ids(&mut self, py: Python<'_>, ids: Vec<Bound<'_, PyString>>) -> PyResult<()> {
        let skip = ids.len().saturating_sub(RECENT_TRADE_IDS);
        self.trade_ids = ids.into_iter().skip(skip).map(TradeId::of).collect::<PyResult<_>>()?;
        self.trade_id_set.clear();
        for id in &self.trade_ids {
            self.trade_id_set.insert(id.clone_ref(py));
        }
        Ok(())
    }
}

impl SymbolCore {
    /// `process` of a book the kernel decoded (`TickLane`): the same checks, hold and order.
    pub(crate) fn process_book(
        &mut self,
        py: Python<'_>,
        book: NativeBook,
        event_ms: i64,
        out: &Bound<'_, PyAny>,
        state: &Bound<'_, PyAny>,
    ) -> PyResult<Option<String>> {
        if let Some(reason) = self.late(py, event_ms, out)? {
            return Ok(Some(reason));
        }
        if let Some(reason) = self.book_in_order(py, book.seq.map(i128::from), event_ms, out)? {
            return Ok(Some(reason));
        }
        let stamped = book.ts.is_some();
        self.take(Held::Book(Box::new(book)), stamped, event_ms, out, state)?;
        Ok(None)
    }

    /// `process` of a trade the kernel read (`TickLane`), made the `TradeTick` msgspec would make.
    pub(crate) fn process_trade(
        &mut self,
        py: Python<'_>,
        trade: &TradeFields<'_>,
        id: Option<Bound<'_, PyString>>,
        event_ms: i64,
        out: &Bound<'_, PyAny>,
        state: &Bound<'_, PyAny>,
    ) -> PyResult<Option<String>> {
        let side = if trade.buy { intern!(py, "buy") } else { intern!(py, "sell") };
        let args = (
            self.exchange.clone_ref(py),
            self.symbol.clone_ref(py),
            trade.envelope.recv_ts,
            trade.envelope.ts,
            trade.price,
            trade.amount,
            side,
            id,
            trade.backfilled,
        );
        let tick = self.trade_type.bind(py).call1(args)?;
        self.process(&tick, event_ms, out, state)
    }

    /// `process` of a ticker the kernel read (`TickLane`), made the `TickerTick` msgspec would make.
    pub(crate) fn process_ticker(
        &mut self,
        py: Python<'_>,
        ticker: &TickerFields<'_>,
        event_ms: i64,
        out: &Bound<'_, PyAny>,
        state: &Bound<'_, PyAny>,
    ) -> PyResult<Option<String>> {
        let [bid, ask, bid_size, ask_size, last, base_volume, quote_volume] = ticker.values;
        let envelope = &ticker.envelope;
        let args = (
            self.exchange.clone_ref(py),
            self.symbol.clone_ref(py),
            envelope.recv_ts,
            envelope.ts,
            bid,
            ask,
            bid_size,
            ask_size,
            last,
            base_volume,
            quote_volume,
        );
        let tick = self.ticker_type.bind(py).call1(args)?;
        self.process(&tick, event_ms, out, state)
    }

    /// Why a tick at `event_ms` is late (counted), or None.
    fn late(&self, py: Python<'_>, event_ms: i64, out: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
        let step = self.interval_ms;
        if let Some(next_ms) = self.next_ms {
            if event_ms < next_ms - step {
                count(out, intern!(py, "late"))?;
                return Ok(Some(format!(
                    "late event: event time {event_ms} is before the open interval [{}, {next_ms})",
                    next_ms - step
                )));
            }
        }
        if let Some(watermark) = self.watermark_ms {
            if event_ms < watermark {
                count(out, intern!(py, "late"))?;
                return Ok(Some(format!("late event: event time {event_ms} is before the watermark {watermark}")));
            }
        }
        Ok(None)
    }

    /// Why a book with `seq` at `event_ms` repeats the last one (counted), or None: then it is
    /// the last one.
    fn book_in_order(
        &mut self,
        py: Python<'_>,
        seq: Option<i128>,
        event_ms: i64,
        out: &Bound<'_, PyAny>,
    ) -> PyResult<Option<String>> {
        if let (Some(seq), Some(last)) = (seq, self.last_seq) {
            if seq <= last {
                if let Some(reason) = self.book_order(seq, last, event_ms) {
                    count(out, intern!(py, "duplicates"))?;
                    return Ok(Some(reason));
                }
            }
        }
        self.last_seq = seq;
        self.last_seq_ms = Some(event_ms);
        Ok(None)
    }

    /// An accepted tick (`stamped`: it has its exchange's `ts`) moves the event time; it is
    /// applied at once, or held and applied once the time passes it by the allowed lateness.
    fn take(
        &mut self,
        tick: Held,
        stamped: bool,
        event_ms: i64,
        out: &Bound<'_, PyAny>,
        state: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let mut last = self.last_event_ms;
        if stamped {
            if !self.stamped {
                // From now on the exchange's clock: forget the receive clock's time.
                self.stamped = true;
                last = None;
            }
            if last.is_none_or(|last| event_ms > last) {
                last = Some(event_ms);
                self.last_event_ms = last;
            }
        } else {
            // The receive clock moves the time only where it runs further ahead than any feed's latency.
            let moved = if self.stamped { event_ms - RECEIVE_CLOCK_LEAD_MS } else { event_ms };
            if last.is_none_or(|last| moved > last) {
                last = Some(moved);
                self.last_event_ms = last;
            }
        }
        let last = last.expect("a receive-clock tick on a stamped symbol finds its clock set");
        if self.lateness_ms == 0 && self.held.is_empty() && event_ms <= last {
            return self.apply(tick, event_ms, out, state);
        }
        match self.held.back() {
            Some(&(newest, _)) if event_ms < newest => {
                let at = self.held.partition_point(|&(held_ms, _)| held_ms <= event_ms);
                self.held.insert(at, (event_ms, tick));
            }
            _ => self.held.push_back((event_ms, tick)),
        }
        let horizon = last - self.lateness_ms;
        self.apply_held_before(horizon + 1, out, state)?;
        if self.next_ms.is_some_and(|next_ms| horizon >= next_ms) {
            self.advance(horizon, out, state)?;
        }
        Ok(())
    }

    /// The `BookTick` the envelope of `book` decodes to.
    fn book_tick(&self, py: Python<'_>, book: &NativeBook) -> PyResult<PyObject> {
        let args = (
            self.exchange.clone_ref(py),
            self.symbol.clone_ref(py),
            book.recv_ts,
            book.ts,
            Levels { pairs: book.bids.clone() },
            Levels { pairs: book.asks.clone() },
            book.seq,
        );
        Ok(self.book_type.bind(py).call1(args)?.unbind())
    }

    /// The book as it stands, for a call back (which cannot read this object while it works).
    fn book(&self, py: Python<'_>) -> (Option<Py<Levels>>, Option<Py<Levels>>) {
        (self.bids.as_ref().map(|b| b.clone_ref(py)), self.asks.as_ref().map(|a| a.clone_ref(py)))
    }

    fn kind(&self, tick: &Bound<'_, PyAny>) -> Kind {
        let kind = tick.get_type();
        if kind.is(self.book_type.bind(tick.py())) {
            Kind::Book
        } else if kind.is(self.trade_type.bind(tick.py())) {
            Kind::Trade
        } else {
            Kind::Ticker
        }
    }

    fn remember(&mut self, py: Python<'_>, id: TradeId) {
        if self.trade_ids.len() == RECENT_TRADE_IDS {
            if let Some(oldest) = self.trade_ids.pop_front() {
                self.trade_id_set.remove(&oldest);
            }
        }
        self.trade_ids.push_back(id.clone_ref(py));
        self.trade_id_set.insert(id);
    }

    /// Why a book with `seq` repeats the last accepted book (seq `last`), or None.
    fn book_order(&self, seq: i128, last: i128, event_ms: i64) -> Option<String> {
        if seq == last {
            return Some(format!("duplicate book: seq {seq} already applied"));
        }
        if seq < last && self.last_seq_ms.is_some_and(|last_ms| event_ms <= last_ms) {
            return Some(format!("out-of-order book: seq {seq} after seq {last}"));
        }
        None
    }

    /// Apply the held ticks before `end_ms`, in order.
    fn apply_held_before(&mut self, end_ms: i64, out: &Bound<'_, PyAny>, state: &Bound<'_, PyAny>) -> PyResult<()> {
        while self.held.front().is_some_and(|&(held_ms, _)| held_ms < end_ms) {
            let (held_ms, tick) = self.held.pop_front().expect("a front was seen");
            self.apply(tick, held_ms, out, state)?;
        }
        Ok(())
    }

    /// Close the intervals ending at or before `event_ms`, then apply the tick.
    fn apply(&mut self, tick: Held, event_ms: i64, out: &Bound<'_, PyAny>, state: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = out.py();
        match self.next_ms {
            None => self.next_ms = Some(event_ms.div_euclid(self.interval_ms) * self.interval_ms + self.interval_ms),
            Some(next_ms) if event_ms >= next_ms => self.advance(event_ms, out, state)?,
            Some(_) => {}
        }
        let tick = match tick {
            Held::Book(book) => {
                let levels = self.max_levels;
                let (mut bids, mut asks) = (book.bids, book.asks);
                bids.truncate(levels);
                asks.truncate(levels);
                return self.on_book(py, Py::new(py, Levels { pairs: bids })?, Py::new(py, Levels { pairs: asks })?, event_ms);
            }
            Held::Tick(tick) => tick.into_bound(py),
        };
        match self.kind(&tick) {
            Kind::Book => {
                let mut bids = tick.getattr(intern!(py, "bids"))?.downcast_into::<Levels>()?.unbind();
                let mut asks = tick.getattr(intern!(py, "asks"))?.downcast_into::<Levels>()?.unbind();
                let levels = self.max_levels;
                if bids.get().pairs.len() > levels || asks.get().pairs.len() > levels {
                    bids = Py::new(py, Levels { pairs: bids.get().pairs.iter().take(levels).copied().collect() })?;
                    asks = Py::new(py, Levels { pairs: asks.get().pairs.iter().take(levels).copied().collect() })?;
                }
                self.on_book(py, bids, asks, event_ms)
            }
            Kind::Trade => {
                let (bids, asks) = self.book(py);
                state.call_method1(intern!(py, "_on_trade"), (tick, event_ms, out, bids, asks)).map(drop)
            }
            Kind::Ticker => state.call_method1(intern!(py, "_on_ticker"), (tick, event_ms, out)).map(drop),
        }
    }

    /// Fold in a book update whose sides are cut to the kept levels.
    fn on_book(&mut self, py: Python<'_>, bids: Py<Levels>, asks: Py<Levels>, event_ms: i64) -> PyResult<()> {
        let prev = match (&self.bids, &self.asks) {
            (Some(prev_bids), Some(prev_asks)) => Some((prev_bids.get().pairs.as_slice(), prev_asks.get().pairs.as_slice())),
            _ => None,
        };
        let mid = self.flows.borrow_mut(py).on_book(
            &bids.get().pairs,
            &asks.get().pairs,
            prev,
            self.last_mid,
            self.tight_spread,
        )?;
        self.last_mid = mid;
        self.bids = Some(bids);
        self.asks = Some(asks);
        self.last_book_ms = Some(event_ms);
        Ok(())
    }

    /// Close every grid interval ending at or before `event_ms`.
    fn advance(&mut self, event_ms: i64, out: &Bound<'_, PyAny>, state: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = out.py();
        let mut next_ms = self.next_ms.expect("an interval is open");
        while next_ms <= event_ms {
            let (bids, asks) = self.book(py);
            let args = (next_ms, out, bids, asks, self.last_mid, self.last_book_ms);
            state.call_method1(intern!(py, "_close_interval"), args)?;
            next_ms += self.interval_ms;
        }
        self.next_ms = Some(next_ms);
        Ok(())
    }
}

/// A trade id as Python hashes and compares it: no copy of its text is made.
struct TradeId {
    hash: isize,
    id: Py<PyString>,
}

impl TradeId {
    fn of(id: Bound<'_, PyString>) -> PyResult<TradeId> {
        Ok(TradeId { hash: id.hash()?, id: id.unbind() })
    }

    fn clone_ref(&self, py: Python<'_>) -> TradeId {
        TradeId { hash: self.hash, id: self.id.clone_ref(py) }
    }
}

impl Hash for TradeId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_isize(self.hash);
    }
}

/// Takes the hash Python gave (`TradeId`), already spread over its bits, as it is.
#[derive(Default)]
struct PythonHash(u64);

impl Hasher for PythonHash {
    fn finish(&self) -> u64 {
        self.0
    }

    /// Any other input (the trait asks for it; a `TradeId` writes its hash alone), folded in.
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_isize(&mut self, hash: isize) {
        self.0 = hash as u64;
    }
}

impl PartialEq for TradeId {
    fn eq(&self, other: &TradeId) -> bool {
        self.hash == other.hash
            && Python::with_gil(|py| self.id.bind(py).as_any().eq(other.id.bind(py)).unwrap_or(false))
    }
}

impl Eq for TradeId {}

/// A book's `seq`: None, or an integer of up to 64 bits, signed or not.
fn sequence(seq: &Bound<'_, PyAny>) -> PyResult<Option<i128>> {
    if seq.is_none() {
        return Ok(None);
    }
    match seq.extract::<i64>() {
        Ok(seq) => Ok(Some(seq.into())),
        Err(_) => Ok(Some(seq.extract::<u64>()?.into())),
    }
}

/// Add one to the counter `name` of an `EngineOutput`.
fn count(out: &Bound<'_, PyAny>, name: &Bound<'_, PyString>) -> PyResult<()> {
    let value: i64 = out.getattr(name)?.extract()?;
    out.setattr(name, value + 1)
}
