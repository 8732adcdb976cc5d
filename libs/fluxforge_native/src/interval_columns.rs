//! The columns of an HF row that come from its interval rather than its book (docs/design.md
//! "Feature contracts"): the book's age, the interval's update and trade counts and OFI, the
//! mid's log return, velocity and acceleration, every rolling window and the calendar.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::columns::Kind;
use crate::flows::IntervalFlows;
use crate::hf_rows::ColumnFinder;
use crate::rows::Cell;
use crate::windows::RollingWindows;

const MS_PER_DAY: i64 = 86_400_000;

/// The names of an HF row's interval columns under one config: the OFI levels'; per horizon
/// (intervals, rv, ofi_cum, tfi, trade_volume); the regime window (intervals, depth_var,
/// tight_spread_frac); and the grid interval in ms.
pub type IntervalNames = (
    Vec<String>,
    Vec<(usize, String, String, String, String)>,
    (usize, String, String),
    i64,
);

fn f64_cell(value: Option<f64>) -> Cell {
    value.map_or(Cell::Null, Cell::F64)
}

fn i64_cell(value: Option<i64>) -> Cell {
    value.map_or(Cell::Null, Cell::I64)
}

/// Where the interval columns of an HF row go in its cells.
pub struct IntervalColumns {
    /// last_book_ts, book_age_ms, update_count, trade_count
    counts: [usize; 4],
    ofi: Vec<usize>,
    /// mlofi, log_return, mid_velocity, mid_acceleration
    mid: [usize; 4],
    /// One horizon's window length in intervals and its realized volatility, cumulative OFI,
    /// trade flow imbalance and traded volume.
    horizons: Vec<(usize, [usize; 4])>,
    /// The regime window in intervals, its depth-variance and tight-spread-fraction columns.
    regime: (usize, usize, usize),
    /// hour, minute, day_of_week, is_weekend
    calendar: [usize; 4],
    /// The grid interval in seconds, as Python's `interval_ms / 1000` gives it.
    interval_s: f64,
}

impl IntervalColumns {
    pub fn new(names: IntervalNames, finder: &mut ColumnFinder) -> PyResult<Self> {
        let (ofi, horizons, regime, interval_ms) = names;
        let mut take = |name: &str, kind| finder.take(name, kind);
        let counts = [
            take("last_book_ts", Kind::I64)?,
            take("book_age_ms", Kind::I64)?,
            take("update_count", Kind::I64)?,
            take("trade_count", Kind::I64)?,
        ];
        let ofi = ofi.iter().map(|name| take(name, Kind::F64)).collect::<PyResult<_>>()?;
        let mid = [
            take("mlofi", Kind::F64)?,
            take("log_return", Kind::F64)?,
            take("mid_velocity", Kind::F64)?,
            take("mid_acceleration", Kind::F64)?,
        ];
        let horizons = horizons
            .iter()
            .map(|(k, rv, ofi, tfi, volume)| {
                Ok((
                    *k,
                    [take(rv, Kind::F64)?, take(ofi, Kind::F64)?, take(tfi, Kind::F64)?, take(volume, Kind::F64)?],
                ))
            })
            .collect::<PyResult<_>>()?;
        let regime = (regime.0, take(&regime.1, Kind::F64)?, take(&regime.2, Kind::F64)?);
        let calendar = [
            take("hour", Kind::I64)?,
            take("minute", Kind::I64)?,
            take("day_of_week", Kind::I64)?,
            take("is_weekend", Kind::Bool)?,
        ];
        Ok(IntervalColumns {
            counts,
            ofi,
            mid,
            horizons,
            regime,
            calendar,
            interval_s: interval_ms as f64 / 1000.0,
        })
    }

    /// Writes the columns of the interval ending at `t` into `row`. `windows` holds the interval
    /// already; `mid` is the book's at `t` (None before any book), `prev_mid` and `prev_velocity`
    /// the previous row's. Returns this row's mid velocity.
    #[allow(clippy::too_many_arguments)]
    pub fn write(
        &self,
        row: &mut [Cell],
        t: i64,
        last_book_ms: Option<i64>,
        flows: &IntervalFlows,
        windows: &mut RollingWindows,
        mid: Option<f64>,
        prev_mid: Option<f64>,
        prev_velocity: Option<f64>,
    ) -> PyResult<Option<f64>> {
        if flows.ofi.len() != self.ofi.len() {
            return Err(PyValueError::new_err(format!(
                "the interval holds {} OFI levels, the row {} columns of them",
                flows.ofi.len(),
                self.ofi.len()
            )));
        }
        let [last_book_ts, book_age_ms, update_count, trade_count] = self.counts;
        row[last_book_ts] = i64_cell(last_book_ms);
        row[book_age_ms] = i64_cell(last_book_ms.map(|ms| t - ms));
        row[update_count] = Cell::I64(flows.n);
        row[trade_count] = Cell::I64(flows.n_trades);
        for (&column, &value) in self.ofi.iter().zip(&flows.ofi) {
            row[column] = Cell::F64(value);
        }
        // Mids lie in [1e-30, 1e30) (decoding's bounds), so their ratio is positive and finite.
        let (log_return, velocity) = match (mid, prev_mid) {
            (Some(mid), Some(prev)) => (Some((mid / prev).ln()), Some((mid - prev) / self.interval_s)),
            _ => (None, None),
        };
        let acceleration = match (velocity, prev_velocity) {
            (Some(velocity), Some(prev)) => Some((velocity - prev) / self.interval_s),
            _ => None,
        };
        let [mlofi, log_return_column, velocity_column, acceleration_column] = self.mid;
        row[mlofi] = Cell::F64(flows.mlofi());
        row[log_return_column] = f64_cell(log_return);
        row[velocity_column] = f64_cell(velocity);
        row[acceleration_column] = f64_cell(acceleration);
        for &(k, [rv, ofi, tfi, volume]) in &self.horizons {
            row[rv] = Cell::F64(windows.realized_vol(k));
            row[ofi] = Cell::F64(windows.ofi_sum(k));
            let (imbalance, traded) = windows.trade_flow(k);
            row[tfi] = Cell::F64(imbalance);
            row[volume] = Cell::F64(traded);
        }
        let (k, variance, tight) = self.regime;
        row[variance] = f64_cell(windows.depth_variance(k));
        row[tight] = f64_cell(windows.tight_fraction(k));
        let (day, ms_of_day) = (t.div_euclid(MS_PER_DAY), t.rem_euclid(MS_PER_DAY));
        let day_of_week = (day + 3).rem_euclid(7); // 1970-01-01 was a Thursday; Monday = 0
        let [hour, minute, weekday, weekend] = self.calendar;
        row[hour] = Cell::I64(ms_of_day / 3_600_000);
        row[minute] = Cell::I64(ms_of_day / 60_000 % 60);
        row[weekday] = Cell::I64(day_of_week);
        row[weekend] = Cell::Bool(day_of_week >= 5);
        Ok(velocity)
    }
}
