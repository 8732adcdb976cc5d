//! Rolling windows over the last closed intervals, column by column (docs/design.md "Feature
//! contracts"): a window's sums are exact sums rounded once, as Python's `math.fsum` gives them.
//! The engine never keeps raw updates: a window of `h` is the last `h / I` intervals' flows, so
//! its state is bounded by the longest window, never by run length. Returns count "between
//! consecutive book updates with event time in the window": the return into an interval's first
//! update is kept apart (`r2_cross`) so that a window can drop the one whose earlier update lies
//! outside it.

use std::collections::VecDeque;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::flows::IntervalFlows;

/// The correctly rounded sum of `values`, bit for bit what CPython's `math.fsum` returns for
/// finite values whose sum stays finite (validation bounds every input the engine sums; past
/// that `math.fsum` raises and this gives NaN).
pub fn fsum(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut sum = ExactSum::default();
    values.into_iter().for_each(|x| sum.add(x));
    sum.value()
}

/// An exact sum: Shewchuk's non-overlapping partials, in increasing magnitude, which take a
/// value in, or back out (its negation), without error; `value` rounds them as `math.fsum` does.
/// Any such partials of the same exact sum round alike (the rounding is correct), so a window's
/// sum can slide (`WindowSums`) and still equal `math.fsum` of the values in the window.
#[derive(Clone, Default)]
struct ExactSum {
    partials: Vec<f64>,
}

impl ExactSum {
    fn add(&mut self, mut x: f64) {
        let partials = &mut self.partials;
        let mut kept = 0;
        for j in 0..partials.len() {
            let mut y = partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                partials[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        partials.truncate(kept);
        if x != 0.0 {
            partials.push(x);
        }
    }

    /// The top partials added while exact, with CPython's correction for a half-way case spread
    /// over two partials.
    fn value(&self) -> f64 {
        let Some((&top, rest)) = self.partials.split_last() else {
            return 0.0;
        };
        let (mut hi, mut lo) = (top, 0.0);
        let mut below = rest.len(); // the partials not yet added: rest[..below]
        while below > 0 {
            below -= 1;
            let (x, y) = (hi, rest[below]);
            hi = x + y;
            lo = y - (hi - x);
            if lo != 0.0 {
                break;
            }
        }
        if let Some(&next) = rest[..below].last() {
            if (lo < 0.0 && next < 0.0) || (lo > 0.0 && next > 0.0) {
                let y = lo * 2.0;
                let x = hi + y;
                if y == x - hi {
                    hi = x;
                }
            }
        }
        hi
    }
}

/// The exact sums of the columns summed over the last `k` intervals, kept as intervals come and
/// go: a window's sums cost a few partials, not a pass over its `k` intervals.
struct WindowSums {
    k: usize,
    r2_in: ExactSum,
    r2_cross: ExactSum,
    ofi1: ExactSum,
    buy: ExactSum,
    sell: ExactSum,
}

/// The last `capacity` closed intervals' flows, one column per field a window reads.
#[pyclass(module = "fluxforge_native")]
pub struct RollingWindows {
    capacity: usize,
    buy: VecDeque<f64>,
    depth_m2: VecDeque<f64>,
    depth_mean: VecDeque<f64>,
    n: VecDeque<i64>,
    n_tight: VecDeque<i64>,
    ofi1: VecDeque<f64>,
    r2_cross: VecDeque<f64>,
    r2_in: VecDeque<f64>,
    sell: VecDeque<f64>,
    /// One per window length asked for, made at the first ask (not part of the state).
    sums: Vec<WindowSums>,
}

/// The last `k` values of a column (all of them when it holds fewer).
fn last<T: Copy>(column: &VecDeque<T>, k: usize) -> impl Iterator<Item = T> + '_ {
    column.range(column.len().saturating_sub(k)..).copied()
}

impl RollingWindows {
    /// The sums over the last `k` intervals, made from the columns at the first ask.
    fn sums(&mut self, k: usize) -> &WindowSums {
        let index = match self.sums.iter().position(|sums| sums.k == k) {
            Some(index) => index,
            None => {
                let sum = |column: &VecDeque<f64>| {
                    let mut sum = ExactSum::default();
                    last(column, k).for_each(|x| sum.add(x));
                    sum
                };
                self.sums.push(WindowSums {
                    k,
                    r2_in: sum(&self.r2_in),
                    r2_cross: sum(&self.r2_cross),
                    ofi1: sum(&self.ofi1),
                    buy: sum(&self.buy),
                    sell: sum(&self.sell),
                });
                self.sums.len() - 1
            }
        };
        &self.sums[index]
    }
}

#[pymethods]
impl RollingWindows {
    #[new]
    fn new(capacity: usize) -> Self {
        let column = || VecDeque::with_capacity(capacity + 1);
        RollingWindows {
            capacity,
            buy: column(),
            depth_m2: column(),
            depth_mean: column(),
            n: VecDeque::with_capacity(capacity + 1),
            n_tight: VecDeque::with_capacity(capacity + 1),
            ofi1: column(),
            r2_cross: column(),
            r2_in: column(),
            sell: column(),
            sums: Vec::new(),
        }
    }

    /// Add a closed interval, dropping the oldest past `capacity`.
    fn push(&mut self, flows: PyRef<'_, IntervalFlows>) {
        self.n.push_back(flows.n);
        self.r2_in.push_back(flows.r2_in);
        self.r2_cross.push_back(flows.r2_cross);
        self.ofi1.push_back(flows.ofi.first().copied().unwrap_or(0.0));
        self.buy.push_back(flows.buy_qty);
        self.sell.push_back(flows.sell_qty);
        self.n_tight.push_back(flows.n_tight);
        self.depth_mean.push_back(flows.depth_mean);
        self.depth_m2.push_back(flows.depth_m2);
        let len = self.n.len();
        for sums in &mut self.sums {
            // The interval leaving the window (past k, or past capacity: the one dropped below)
            // first, so that the partials never hold more than the window.
            let width = sums.k.min(self.capacity);
            if len > width {
                let old = len - 1 - width;
                sums.r2_in.add(-self.r2_in[old]);
                sums.r2_cross.add(-self.r2_cross[old]);
                sums.ofi1.add(-self.ofi1[old]);
                sums.buy.add(-self.buy[old]);
                sums.sell.add(-self.sell[old]);
            }
            sums.r2_in.add(flows.r2_in);
            sums.r2_cross.add(flows.r2_cross);
            sums.ofi1.add(self.ofi1[len - 1]);
            sums.buy.add(flows.buy_qty);
            sums.sell.add(flows.sell_qty);
        }
        if self.n.len() > self.capacity {
            self.n.pop_front();
            self.r2_in.pop_front();
            self.r2_cross.pop_front();
            self.ofi1.pop_front();
            self.buy.pop_front();
            self.sell.pop_front();
            self.n_tight.pop_front();
            self.depth_mean.pop_front();
            self.depth_m2.pop_front();
        }
    }

    /// sqrt of the summed squared returns between consecutive updates inside the last k
    /// intervals: the window's first update had its predecessor outside it, so the returns into
    /// the intervals up to the one holding it are left out.
    pub(crate) fn realized_vol(&mut self, k: usize) -> f64 {
        let start = self.n.len().saturating_sub(k);
        match self.n.range(start..).position(|&count| count != 0) {
            Some(first) => {
                let sums = self.sums(k);
                let (r2_in, mut cross) = (sums.r2_in.value(), sums.r2_cross.clone());
                self.r2_cross.range(start..=start + first).for_each(|&r2| cross.add(-r2));
                (r2_in + cross.value()).sqrt()
            }
            None => 0.0,
        }
    }

    pub(crate) fn ofi_sum(&mut self, k: usize) -> f64 {
        self.sums(k).ofi1.value()
    }

    /// (trade flow imbalance, traded volume) over the last k intervals.
    pub(crate) fn trade_flow(&mut self, k: usize) -> (f64, f64) {
        let sums = self.sums(k);
        let (buy, sell) = (sums.buy.value(), sums.sell.value());
        let mut both = sums.buy.clone();
        sums.sell.partials.iter().for_each(|&partial| both.add(partial));
        let volume = both.value();
        if volume > 0.0 {
            ((buy - sell) / (buy + sell), volume)
        } else {
            (0.0, volume)
        }
    }

    /// Population variance of total depth after each update, merging the intervals' Welford states.
    pub(crate) fn depth_variance(&self, k: usize) -> Option<f64> {
        let mut count: i64 = 0;
        let (mut mean, mut m2) = (0.0, 0.0);
        let intervals = last(&self.n, k).zip(last(&self.depth_mean, k)).zip(last(&self.depth_m2, k));
        for ((nb, mb), m2b) in intervals {
            if nb != 0 && count == 0 {
                (count, mean, m2) = (nb, mb, m2b);
            } else if nb != 0 {
                let total = count + nb;
                let delta = mb - mean;
                mean += delta * nb as f64 / total as f64;
                m2 += m2b + delta * delta * count as f64 * nb as f64 / total as f64;
                count = total;
            }
        }
        (count != 0).then(|| m2 / count as f64)
    }

    pub(crate) fn tight_fraction(&self, k: usize) -> Option<f64> {
        let count: i64 = last(&self.n, k).sum();
        let tight: i64 = last(&self.n_tight, k).sum();
        (count != 0).then(|| tight as f64 / count as f64)
    }

    /// The columns in their stored order (their names sorted).
    fn to_state<'py>(&self, py: Python<'py>) -> Bound<'py, PyList> {
        let floats = |column: &VecDeque<f64>| column.iter().copied().collect::<Vec<f64>>().into_py(py);
        let ints = |column: &VecDeque<i64>| column.iter().copied().collect::<Vec<i64>>().into_py(py);
        PyList::new_bound(
            py,
            [
                floats(&self.buy),
                floats(&self.depth_m2),
                floats(&self.depth_mean),
                ints(&self.n),
                ints(&self.n_tight),
                floats(&self.ofi1),
                floats(&self.r2_cross),
                floats(&self.r2_in),
                floats(&self.sell),
            ],
        )
    }

    /// Restore what `to_state` gave.
    fn load_state(&mut self, values: Vec<Bound<'_, PyAny>>) -> PyResult<()> {
        let [buy, depth_m2, depth_mean, n, n_tight, ofi1, r2_cross, r2_in, sell] =
            <[Bound<'_, PyAny>; 9]>::try_from(values).map_err(|values| {
                PyValueError::new_err(format!("rolling windows state has {} columns, expected 9", values.len()))
            })?;
        let n: VecDeque<i64> = n.extract::<Vec<i64>>()?.into();
        if n.len() > self.capacity {
            // The sliding sums take out the interval a window of `capacity` drops.
            return Err(PyValueError::new_err(format!(
                "rolling windows state holds {} intervals, more than the {} these windows keep",
                n.len(),
                self.capacity
            )));
        }
        let floats = |column: Bound<'_, PyAny>| -> PyResult<VecDeque<f64>> {
            let column: VecDeque<f64> = column.extract::<Vec<f64>>()?.into();
            if column.len() != n.len() {
                return Err(PyValueError::new_err("rolling windows state has columns of different lengths"));
            }
            Ok(column)
        };
        let (buy, depth_m2, depth_mean) = (floats(buy)?, floats(depth_m2)?, floats(depth_mean)?);
        let (ofi1, r2_cross, r2_in, sell) = (floats(ofi1)?, floats(r2_cross)?, floats(r2_in)?, floats(sell)?);
        let n_tight: VecDeque<i64> = n_tight.extract::<Vec<i64>>()?.into();
        if n_tight.len() != n.len() {
            return Err(PyValueError::new_err("rolling windows state has columns of different lengths"));
        }
        *self = RollingWindows {
            sums: Vec::new(),
            capacity: self.capacity,
            buy,
            depth_m2,
            depth_mean,
            n,
            n_tight,
            ofi1,
            r2_cross,
            r2_in,
            sell,
        };
        Ok(())
    }
}
