//! The columns of an HF row that come from its interval rather than its book (docs/design.md
//! "Feature contracts"): the book's age, the interval's update and trade counts and OFI, the
//! mid's log return, velocity and acceleration, every rolling window and the calendar. Written
//! into the row in one call, in the order the engine always wrote them (a feature message keeps
//! its keys in that order), instead of ~20 calls and ~35 stores from Python.

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::flows::IntervalFlows;
use crate::windows::RollingWindows;

const MS_PER_DAY: i64 = 86_400_000;

/// One horizon's window length in intervals and its columns: realized volatility, cumulative
/// OFI, trade flow imbalance, traded volume.
type Horizon = (usize, [Py<PyString>; 4]);

/// The interval columns of an HF row under one config, names interned (as `BookColumns`).
#[pyclass(frozen, module = "fluxforge_native")]
pub struct IntervalColumns {
    ofi: Vec<Py<PyString>>,
    horizons: Vec<Horizon>,
    /// The regime window in intervals, its depth-variance and tight-spread-fraction columns.
    regime: (usize, Py<PyString>, Py<PyString>),
    /// The grid interval in seconds, as Python's `interval_ms / 1000` gives it.
    interval_s: f64,
}

#[pymethods]
impl IntervalColumns {
    /// The names of the OFI levels' columns; per horizon (intervals, rv, ofi_cum, tfi,
    /// trade_volume); the regime window (intervals, depth_var, tight_spread_frac); the grid
    /// interval in ms.
    #[new]
    #[allow(clippy::type_complexity)]
    fn new(
        ofi: Vec<Bound<'_, PyString>>,
        horizons: Vec<(usize, Bound<'_, PyString>, Bound<'_, PyString>, Bound<'_, PyString>, Bound<'_, PyString>)>,
        regime: (usize, Bound<'_, PyString>, Bound<'_, PyString>),
        interval_ms: i64,
    ) -> Self {
        IntervalColumns {
            ofi: ofi.into_iter().map(Bound::unbind).collect(),
            horizons: horizons
                .into_iter()
                .map(|(k, rv, ofi, tfi, volume)| (k, [rv, ofi, tfi, volume].map(Bound::unbind)))
                .collect(),
            regime: (regime.0, regime.1.unbind(), regime.2.unbind()),
            interval_s: interval_ms as f64 / 1000.0,
        }
    }

    /// Write the columns of the interval ending at `t` into `row`, after its book columns.
    /// `windows` holds the interval already; `mid` is the book's at `t` (None before any book),
    /// `prev_mid` and `prev_velocity` the previous row's. Returns this row's mid velocity.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (row, t, last_book_ms, flows, windows, mid, prev_mid, prev_velocity))]
    fn write(
        &self,
        row: &Bound<'_, PyDict>,
        t: i64,
        last_book_ms: Option<i64>,
        flows: PyRef<'_, IntervalFlows>,
        mut windows: PyRefMut<'_, RollingWindows>,
        mid: Option<f64>,
        prev_mid: Option<f64>,
        prev_velocity: Option<f64>,
    ) -> PyResult<Option<f64>> {
        let py = row.py();
        if flows.ofi.len() != self.ofi.len() {
            return Err(PyValueError::new_err(format!(
                "the interval holds {} OFI levels, the row {} columns of them",
                flows.ofi.len(),
                self.ofi.len()
            )));
        }
        row.set_item(intern!(py, "last_book_ts"), last_book_ms)?;
        row.set_item(intern!(py, "book_age_ms"), last_book_ms.map(|ms| t - ms))?;
        row.set_item(intern!(py, "update_count"), flows.n)?;
        row.set_item(intern!(py, "trade_count"), flows.n_trades)?;
        for (name, value) in self.ofi.iter().zip(&flows.ofi) {
            row.set_item(name, value)?;
        }
        row.set_item(intern!(py, "mlofi"), flows.mlofi())?;
        // Mids lie in [1e-30, 1e30) (decoding's bounds), so their ratio is positive and finite.
        let (log_return, velocity) = match (mid, prev_mid) {
            (Some(mid), Some(prev)) => (Some((mid / prev).ln()), Some((mid - prev) / self.interval_s)),
            _ => (None, None),
        };
        let acceleration = match (velocity, prev_velocity) {
            (Some(velocity), Some(prev)) => Some((velocity - prev) / self.interval_s),
            _ => None,
        };
        row.set_item(intern!(py, "log_return"), log_return)?;
        row.set_item(intern!(py, "mid_velocity"), velocity)?;
        row.set_item(intern!(py, "mid_acceleration"), acceleration)?;
        for (k, [rv, ofi, tfi, volume]) in &self.horizons {
            row.set_item(rv, windows.realized_vol(*k))?;
            row.set_item(ofi, windows.ofi_sum(*k))?;
            let (imbalance, traded) = windows.trade_flow(*k);
            row.set_item(tfi, imbalance)?;
            row.set_item(volume, traded)?;
        }
        let (k, variance, tight) = &self.regime;
        row.set_item(variance, windows.depth_variance(*k))?;
        row.set_item(tight, windows.tight_fraction(*k))?;
        let (day, ms_of_day) = (t.div_euclid(MS_PER_DAY), t.rem_euclid(MS_PER_DAY));
        row.set_item(intern!(py, "hour"), ms_of_day / 3_600_000)?;
        row.set_item(intern!(py, "minute"), ms_of_day / 60_000 % 60)?;
        let day_of_week = (day + 3).rem_euclid(7); // 1970-01-01 was a Thursday; Monday = 0
        row.set_item(intern!(py, "day_of_week"), day_of_week)?;
        row.set_item(intern!(py, "is_weekend"), day_of_week >= 5)?;
        Ok(velocity)
    }
}
