//! What happened in one grid interval, folded in as each update arrives (docs/design.md
//! "Feature contracts"). Every sum adds in the order the updates came, one operation at a time
//! as written (no fused multiply-add), so the values are the same bit for bit wherever they
//! are read.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::windows::fsum;

/// Book-update, OFI, trade and regime aggregates of one interval. The field names are the
/// columns of its stored state, in `to_state` order.
#[pyclass(module = "fluxforge_native")]
#[derive(Default)]
pub struct IntervalFlows {
    #[pyo3(get, set)]
    pub(crate) buy_qty: f64,
    #[pyo3(get, set)]
    pub(crate) depth_m2: f64,
    #[pyo3(get, set)]
    pub(crate) depth_mean: f64,
    #[pyo3(get, set)]
    pub(crate) first_mid: f64,
    #[pyo3(get, set)]
    pub(crate) high: f64,
    #[pyo3(get, set)]
    pub(crate) last_mid: f64,
    #[pyo3(get, set)]
    pub(crate) low: f64,
    #[pyo3(get, set)]
    pub(crate) max_spread: f64,
    #[pyo3(get, set)]
    pub(crate) min_spread: f64,
    #[pyo3(get, set)]
    pub(crate) n: i64,
    #[pyo3(get, set)]
    pub(crate) n_tight: i64,
    #[pyo3(get, set)]
    pub(crate) n_trades: i64,
    #[pyo3(get, set)]
    pub(crate) notional: f64,
    /// Multi-level order-flow imbalance summed over the interval, one value per level.
    #[pyo3(get)]
    pub(crate) ofi: Vec<f64>,
    #[pyo3(get, set)]
    pub(crate) r2_cross: f64,
    #[pyo3(get, set)]
    pub(crate) r2_in: f64,
    #[pyo3(get, set)]
    pub(crate) sell_qty: f64,
    #[pyo3(get, set)]
    pub(crate) sum_imb: f64,
    #[pyo3(get, set)]
    pub(crate) sum_rel: f64,
    #[pyo3(get, set)]
    pub(crate) sum_spread: f64,
}

/// A side's level `m`, or the empty level past its end: price 0 (bids) or +inf (asks), size 0.
#[inline]
fn level(side: &[(f64, f64)], m: usize, empty_price: f64) -> (f64, f64) {
    side.get(m).copied().unwrap_or((empty_price, 0.0))
}

impl IntervalFlows {
    /// Fold in a validated book update (`bids`, `asks`, already cut to the kept levels) that
    /// follows `prev`, the book before it (None before the symbol's first book), whose mid was
    /// `prev_mid`. Returns the update's mid.
    pub(crate) fn on_book(
        &mut self,
        bids: &[(f64, f64)],
        asks: &[(f64, f64)],
        prev: Option<(&[(f64, f64)], &[(f64, f64)])>,
        prev_mid: f64,
        tight_spread: f64,
    ) -> PyResult<f64> {
        let (Some(&(pb, qb)), Some(&(pa, qa))) = (bids.first(), asks.first()) else {
            return Err(PyValueError::new_err("a book update needs a level on each side"));
        };
        let mid = (pb + pa) / 2.0;
        let spread = pa - pb;
        let rel = spread / mid;
        if let Some((bids0, asks0)) = prev {
            for (m, ofi) in self.ofi.iter_mut().enumerate() {
                let (p, q) = level(bids, m, 0.0);
                let (p0, q0) = level(bids0, m, 0.0);
                let mut e = if p > p0 {
                    q
                } else if p == p0 {
                    q - q0
                } else {
                    -q0
                };
                let (p, q) = level(asks, m, f64::INFINITY);
                let (p0, q0) = level(asks0, m, f64::INFINITY);
                e -= if p > p0 {
                    -q0
                } else if p == p0 {
                    q - q0
                } else {
                    q
                };
                *ofi += e;
            }
            let r = (mid / prev_mid).ln();
            if self.n != 0 {
                self.r2_in += r * r;
            } else {
                self.r2_cross = r * r;
            }
        }
        self.n += 1;
        let n = self.n;
        if n == 1 {
            self.first_mid = mid;
        }
        self.last_mid = mid;
        if mid > self.high {
            self.high = mid;
        }
        if mid < self.low {
            self.low = mid;
        }
        self.sum_spread += spread;
        if spread < self.min_spread {
            self.min_spread = spread;
        }
        if spread > self.max_spread {
            self.max_spread = spread;
        }
        self.sum_rel += rel;
        self.sum_imb += (qb - qa) / (qb + qa);
        if rel <= tight_spread {
            self.n_tight += 1;
        }
        // Each side left to right from 0.0, then the asks' total added to the bids'.
        let bid_depth = bids.iter().fold(0.0, |sum, &(_, q)| sum + q);
        let ask_depth = asks.iter().fold(0.0, |sum, &(_, q)| sum + q);
        let depth = bid_depth + ask_depth;
        let delta = depth - self.depth_mean;
        self.depth_mean += delta / n as f64;
        self.depth_m2 += delta * (depth - self.depth_mean);
        Ok(mid)
    }
}

#[pymethods]
impl IntervalFlows {
    #[new]
    fn new(ofi_levels: usize) -> Self {
        let mut flows = IntervalFlows { ofi: vec![0.0; ofi_levels], ..Default::default() };
        flows.reset();
        flows
    }

    /// Start the next interval.
    fn reset(&mut self) {
        self.n = 0;
        self.first_mid = 0.0;
        self.last_mid = 0.0;
        self.high = f64::NEG_INFINITY;
        self.low = f64::INFINITY;
        self.sum_spread = 0.0;
        self.sum_rel = 0.0;
        self.sum_imb = 0.0;
        self.min_spread = f64::INFINITY;
        self.max_spread = f64::NEG_INFINITY;
        self.r2_in = 0.0;
        self.r2_cross = 0.0;
        self.ofi.fill(0.0);
        self.n_tight = 0;
        self.depth_mean = 0.0;
        self.depth_m2 = 0.0;
        self.n_trades = 0;
        self.buy_qty = 0.0;
        self.sell_qty = 0.0;
        self.notional = 0.0;
    }

    /// Multi-level OFI: the levels' OFI summed exactly, rounded once (as `math.fsum`).
    pub(crate) fn mlofi(&self) -> f64 {
        fsum(self.ofi.iter().copied())
    }

    /// Fold in an accepted trade.
    fn on_trade(&mut self, price: f64, amount: f64, buy: bool) {
        self.n_trades += 1;
        if buy {
            self.buy_qty += amount;
        } else {
            self.sell_qty += amount;
        }
        self.notional += price * amount;
    }

    /// The fields in their stored order (the field names sorted).
    fn to_state<'py>(&self, py: Python<'py>) -> Bound<'py, PyList> {
        PyList::new_bound(
            py,
            [
                self.buy_qty.into_py(py),
                self.depth_m2.into_py(py),
                self.depth_mean.into_py(py),
                self.first_mid.into_py(py),
                self.high.into_py(py),
                self.last_mid.into_py(py),
                self.low.into_py(py),
                self.max_spread.into_py(py),
                self.min_spread.into_py(py),
                self.n.into_py(py),
                self.n_tight.into_py(py),
                self.n_trades.into_py(py),
                self.notional.into_py(py),
                self.ofi.clone().into_py(py),
                self.r2_cross.into_py(py),
                self.r2_in.into_py(py),
                self.sell_qty.into_py(py),
                self.sum_imb.into_py(py),
                self.sum_rel.into_py(py),
                self.sum_spread.into_py(py),
            ],
        )
    }

    /// Restore what `to_state` gave.
    fn load_state(&mut self, values: Vec<Bound<'_, PyAny>>) -> PyResult<()> {
        let [buy_qty, depth_m2, depth_mean, first_mid, high, last_mid, low, max_spread, min_spread, n, n_tight, n_trades, notional, ofi, r2_cross, r2_in, sell_qty, sum_imb, sum_rel, sum_spread] =
            <[Bound<'_, PyAny>; 20]>::try_from(values).map_err(|values| {
                PyValueError::new_err(format!("interval flows state has {} values, expected 20", values.len()))
            })?;
        let ofi: Vec<f64> = ofi.extract()?;
        if ofi.len() != self.ofi.len() {
            return Err(PyValueError::new_err(format!(
                "interval flows state has {} OFI levels, expected {}",
                ofi.len(),
                self.ofi.len()
            )));
        }
        self.buy_qty = buy_qty.extract()?;
        self.depth_m2 = depth_m2.extract()?;
        self.depth_mean = depth_mean.extract()?;
        self.first_mid = first_mid.extract()?;
        self.high = high.extract()?;
        self.last_mid = last_mid.extract()?;
        self.low = low.extract()?;
        self.max_spread = max_spread.extract()?;
        self.min_spread = min_spread.extract()?;
        self.n = n.extract()?;
        self.n_tight = n_tight.extract()?;
        self.n_trades = n_trades.extract()?;
        self.notional = notional.extract()?;
        self.ofi = ofi;
        self.r2_cross = r2_cross.extract()?;
        self.r2_in = r2_in.extract()?;
        self.sell_qty = sell_qty.extract()?;
        self.sum_imb = sum_imb.extract()?;
        self.sum_rel = sum_rel.extract()?;
        self.sum_spread = sum_spread.extract()?;
        Ok(())
    }
}
