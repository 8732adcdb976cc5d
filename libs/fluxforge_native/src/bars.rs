//! Time bars (docs/design.md "Feature contracts"): each closed grid interval's flows fold into
//! the open bar of every duration, and a bar closes at a grid point that is a multiple of its
//! duration (durations are whole multiples of the interval, so a bar is a run of intervals).
//! Folded here, an interval costs one call for all durations instead of ~15 attribute reads of
//! its flows per duration; the sums add in the same order, one operation at a time.

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::flows::IntervalFlows;

/// Python's `max(a, b)`: `b` only when it is greater, so a tie keeps `a`.
fn max(a: f64, b: f64) -> f64 {
    if b > a {
        b
    } else {
        a
    }
}

/// Python's `min(a, b)`: `b` only when it is smaller.
fn min(a: f64, b: f64) -> f64 {
    if b < a {
        b
    } else {
        a
    }
}

/// The open bar of one duration. The fields after `duration_ms` are its stored state, in
/// `to_state` order (the names sorted).
struct Bar {
    duration_ms: i64,
    close: f64,
    high: f64,
    low: f64,
    max_spread: f64,
    min_spread: f64,
    n: i64,
    n_trades: i64,
    notional: f64,
    open: f64,
    r2: f64,
    sum_imb: f64,
    sum_ofi: f64,
    sum_rel: f64,
    sum_spread: f64,
    volume: f64,
}

const STATE_VALUES: usize = 15;

impl Bar {
    fn new(duration_ms: i64) -> Self {
        Bar {
            duration_ms,
            close: 0.0,
            high: f64::NEG_INFINITY,
            low: f64::INFINITY,
            max_spread: f64::NEG_INFINITY,
            min_spread: f64::INFINITY,
            n: 0,
            n_trades: 0,
            notional: 0.0,
            open: 0.0,
            r2: 0.0,
            sum_imb: 0.0,
            sum_ofi: 0.0,
            sum_rel: 0.0,
            sum_spread: 0.0,
            volume: 0.0,
        }
    }

    fn fold(&mut self, flows: &IntervalFlows) -> PyResult<()> {
        if flows.n != 0 {
            let Some(&ofi) = flows.ofi.first() else {
                return Err(PyValueError::new_err("the interval holds no OFI level"));
            };
            if self.n != 0 {
                self.r2 += flows.r2_in + flows.r2_cross;
                self.high = max(self.high, flows.high);
                self.low = min(self.low, flows.low);
                self.min_spread = min(self.min_spread, flows.min_spread);
                self.max_spread = max(self.max_spread, flows.max_spread);
            } else {
                self.open = flows.first_mid;
                self.r2 = flows.r2_in;
                self.high = flows.high;
                self.low = flows.low;
                self.min_spread = flows.min_spread;
                self.max_spread = flows.max_spread;
            }
            self.close = flows.last_mid;
            self.n += flows.n;
            self.sum_spread += flows.sum_spread;
            self.sum_rel += flows.sum_rel;
            self.sum_imb += flows.sum_imb;
            self.sum_ofi += ofi;
        }
        if flows.n_trades != 0 {
            self.n_trades += flows.n_trades;
            self.volume += flows.buy_qty + flows.sell_qty;
            self.notional += flows.notional;
        }
        Ok(())
    }

    /// The finished bar ending at `end_ms`; an empty one carries the previous close (null before
    /// any book).
    fn row<'py>(
        &self,
        py: Python<'py>,
        exchange: &Bound<'py, PyAny>,
        symbol: &Bound<'py, PyAny>,
        end_ms: i64,
        prev_close: Option<f64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let row = PyDict::new_bound(py);
        let n = self.n;
        let some = n != 0;
        let (open, high, low, close) = if some {
            (Some(self.open), Some(self.high), Some(self.low), Some(self.close))
        } else {
            (prev_close, prev_close, prev_close, prev_close)
        };
        let mean = |sum: f64| some.then(|| sum / n as f64);
        row.set_item(intern!(py, "exchange"), exchange)?;
        row.set_item(intern!(py, "symbol"), symbol)?;
        row.set_item(intern!(py, "ts"), end_ms - self.duration_ms)?;
        row.set_item(intern!(py, "duration_s"), self.duration_ms.div_euclid(1000))?;
        row.set_item(intern!(py, "open"), open)?;
        row.set_item(intern!(py, "high"), high)?;
        row.set_item(intern!(py, "low"), low)?;
        row.set_item(intern!(py, "close"), close)?;
        row.set_item(intern!(py, "count"), n)?;
        row.set_item(intern!(py, "mean_spread"), mean(self.sum_spread))?;
        row.set_item(intern!(py, "min_spread"), some.then_some(self.min_spread))?;
        row.set_item(intern!(py, "max_spread"), some.then_some(self.max_spread))?;
        row.set_item(intern!(py, "mean_rel_spread"), mean(self.sum_rel))?;
        row.set_item(intern!(py, "mean_imbalance_l1"), mean(self.sum_imb))?;
        row.set_item(intern!(py, "sum_ofi"), self.sum_ofi)?;
        row.set_item(intern!(py, "realized_var"), self.r2)?;
        row.set_item(intern!(py, "trade_count"), self.n_trades)?;
        row.set_item(intern!(py, "trade_volume"), self.volume)?;
        // Amounts are positive (decoding's bounds), so a bar with trades has volume.
        let vwap = (self.n_trades != 0).then(|| self.notional / self.volume);
        row.set_item(intern!(py, "vwap"), vwap)?;
        Ok(row)
    }

    fn to_state<'py>(&self, py: Python<'py>) -> Bound<'py, PyList> {
        PyList::new_bound(
            py,
            [
                self.close.into_py(py),
                self.high.into_py(py),
                self.low.into_py(py),
                self.max_spread.into_py(py),
                self.min_spread.into_py(py),
                self.n.into_py(py),
                self.n_trades.into_py(py),
                self.notional.into_py(py),
                self.open.into_py(py),
                self.r2.into_py(py),
                self.sum_imb.into_py(py),
                self.sum_ofi.into_py(py),
                self.sum_rel.into_py(py),
                self.sum_spread.into_py(py),
                self.volume.into_py(py),
            ],
        )
    }

    fn load_state(&mut self, values: Vec<Bound<'_, PyAny>>) -> PyResult<()> {
        let [close, high, low, max_spread, min_spread, n, n_trades, notional, open, r2, sum_imb, sum_ofi, sum_rel, sum_spread, volume] =
            <[Bound<'_, PyAny>; STATE_VALUES]>::try_from(values).map_err(|values| {
                PyValueError::new_err(format!("bar state has {} values, expected {STATE_VALUES}", values.len()))
            })?;
        *self = Bar {
            duration_ms: self.duration_ms,
            close: close.extract()?,
            high: high.extract()?,
            low: low.extract()?,
            max_spread: max_spread.extract()?,
            min_spread: min_spread.extract()?,
            n: n.extract()?,
            n_trades: n_trades.extract()?,
            notional: notional.extract()?,
            open: open.extract()?,
            r2: r2.extract()?,
            sum_imb: sum_imb.extract()?,
            sum_ofi: sum_ofi.extract()?,
            sum_rel: sum_rel.extract()?,
            sum_spread: sum_spread.extract()?,
            volume: volume.extract()?,
        };
        Ok(())
    }
}

/// The open bars of one symbol, one per configured duration (ms, in the config's order).
#[pyclass(module = "fluxforge_native")]
pub struct TimeBars {
    bars: Vec<Bar>,
}

#[pymethods]
impl TimeBars {
    #[new]
    fn new(durations_ms: Vec<i64>) -> PyResult<Self> {
        if durations_ms.iter().any(|&ms| ms <= 0) {
            return Err(PyValueError::new_err("bar durations must be positive"));
        }
        Ok(TimeBars { bars: durations_ms.into_iter().map(Bar::new).collect() })
    }

    /// Fold the interval ending at `end_ms` (`flows`) into every open bar; append to `rows` the
    /// row of each bar that ends there and start it again. `prev_close`: the mid an empty bar
    /// carries (None before any book).
    #[pyo3(signature = (flows, exchange, symbol, end_ms, prev_close, rows))]
    fn close_interval(
        &mut self,
        flows: PyRef<'_, IntervalFlows>,
        exchange: &Bound<'_, PyAny>,
        symbol: &Bound<'_, PyAny>,
        end_ms: i64,
        prev_close: Option<f64>,
        rows: &Bound<'_, PyList>,
    ) -> PyResult<()> {
        let py = rows.py();
        for bar in &mut self.bars {
            bar.fold(&flows)?;
            if end_ms.rem_euclid(bar.duration_ms) == 0 {
                rows.append(bar.row(py, exchange, symbol, end_ms, prev_close)?)?;
                *bar = Bar::new(bar.duration_ms);
            }
        }
        Ok(())
    }

    /// Each bar's state, in duration order.
    fn to_state<'py>(&self, py: Python<'py>) -> Bound<'py, PyList> {
        PyList::new_bound(py, self.bars.iter().map(|bar| bar.to_state(py)))
    }

    /// Restore what `to_state` gave (for the same durations).
    fn load_state(&mut self, py: Python<'_>, values: Vec<Vec<Bound<'_, PyAny>>>) -> PyResult<()> {
        if values.len() != self.bars.len() {
            return Err(PyValueError::new_err(format!(
                "bars state holds {} bars, expected {}",
                values.len(),
                self.bars.len()
            )));
        }
        for (bar, state) in self.bars.iter_mut().zip(values) {
            let duration_s = bar.duration_ms as f64 / 1000.0;
            bar.load_state(state).map_err(|error| {
                PyValueError::new_err(format!("state of the {duration_s} s bar: {}", error.value_bound(py)))
            })?;
        }
        Ok(())
    }
}
