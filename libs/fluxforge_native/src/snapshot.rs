//! The static features of one order-book snapshot (docs/design.md "Feature contracts"), written
//! into an HF row when its interval closes: mid, spread, microprice, each level's price and size
//! with the cumulative imbalance down to it, the depth within each band around the mid. A row of
//! ten levels holds ~60 of them: made here, the levels stay machine floats until the row takes
//! them, and each entry is one dict store under an interned name.

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::levels::Levels;

/// The columns one level fills: bid price, bid size, ask price, ask size, imbalance.
type LevelColumns = [Py<PyString>; 5];

/// The book columns of an HF row under one config, names interned (`BookColumnNames`).
#[pyclass(frozen, module = "fluxforge_native")]
pub struct BookColumns {
    levels: Vec<LevelColumns>,
    /// (band in basis points of the mid, bid depth column, ask depth column)
    bands: Vec<(f64, Py<PyString>, Py<PyString>)>,
    keep_raw: bool,
}

/// The depth within `bps` of the mid: the cumulative size of the levels that close (`distances`,
/// in basis points, grow level by level, so those levels are a prefix of the side).
fn depth(distances: &[f64], cumulative: &[f64], bps: f64) -> PyResult<f64> {
    match distances.partition_point(|&distance| distance <= bps) {
        0 => Ok(0.0),
        k => cumulative
            .get(k - 1)
            .copied()
            .ok_or_else(|| PyValueError::new_err("a book side holds more levels than its columns")),
    }
}

#[pymethods]
impl BookColumns {
    /// One list of names per level column (each `levels` long), the bands as (bps, bid column,
    /// ask column), and whether the sides are kept whole (`bids_raw`, `asks_raw`).
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        bid_px: Vec<Bound<'_, PyString>>,
        bid_sz: Vec<Bound<'_, PyString>>,
        ask_px: Vec<Bound<'_, PyString>>,
        ask_sz: Vec<Bound<'_, PyString>>,
        imbalance: Vec<Bound<'_, PyString>>,
        bands: Vec<(f64, Bound<'_, PyString>, Bound<'_, PyString>)>,
        keep_raw: bool,
    ) -> PyResult<Self> {
        let count = bid_px.len();
        if [&bid_sz, &ask_px, &ask_sz, &imbalance].iter().any(|names| names.len() != count) {
            return Err(PyValueError::new_err("every level column needs one name per level"));
        }
        let levels = (0..count)
            .map(|i| [&bid_px[i], &bid_sz[i], &ask_px[i], &ask_sz[i], &imbalance[i]].map(|name| name.clone().unbind()))
            .collect();
        let bands = bands
            .into_iter()
            .map(|(bps, bid, ask)| (bps, bid.unbind(), ask.unbind()))
            .collect();
        Ok(BookColumns { levels, bands, keep_raw })
    }

    /// Write the features of a non-empty, uncrossed book into `row`.
    fn write(&self, bids: &Levels, asks: &Levels, row: &Bound<'_, PyDict>) -> PyResult<()> {
        let py = row.py();
        let (bids, asks) = (&bids.pairs, &asks.pairs);
        let (Some(&(pb, qb)), Some(&(pa, qa))) = (bids.first(), asks.first()) else {
            return Err(PyValueError::new_err("a book side is empty"));
        };
        let mid = (pb + pa) / 2.0;
        let microprice = (qb * pa + qa * pb) / (qb + qa);
        row.set_item(intern!(py, "mid"), mid)?;
        row.set_item(intern!(py, "spread"), pa - pb)?;
        row.set_item(intern!(py, "rel_spread"), (pa - pb) / mid)?;
        row.set_item(intern!(py, "microprice"), microprice)?;
        row.set_item(intern!(py, "microprice_deviation"), microprice - mid)?;
        let levels = self.levels.len();
        let (mut cum_bids, mut cum_asks) = (Vec::with_capacity(levels), Vec::with_capacity(levels));
        for (i, [bid_px, bid_sz, ask_px, ask_sz, imbalance]) in self.levels.iter().enumerate() {
            for (side, px, sz, cumulative) in [(bids, bid_px, bid_sz, &mut cum_bids), (asks, ask_px, ask_sz, &mut cum_asks)] {
                match side.get(i) {
                    Some(&(price, size)) => {
                        row.set_item(px, price)?;
                        row.set_item(sz, size)?;
                        cumulative.push(cumulative.last().copied().unwrap_or(0.0) + size);
                    }
                    None => {
                        row.set_item(px, py.None())?;
                        row.set_item(sz, py.None())?;
                    }
                }
            }
            let (b, a) = (cum_bids.last().copied().unwrap_or(0.0), cum_asks.last().copied().unwrap_or(0.0));
            row.set_item(imbalance, (b - a) / (b + a))?;
        }
        let bid_bps: Vec<f64> = bids.iter().map(|&(price, _)| (mid - price) / mid * 1e4).collect();
        let ask_bps: Vec<f64> = asks.iter().map(|&(price, _)| (price - mid) / mid * 1e4).collect();
        for (bps, bid_name, ask_name) in &self.bands {
            row.set_item(bid_name, depth(&bid_bps, &cum_bids, *bps)?)?;
            row.set_item(ask_name, depth(&ask_bps, &cum_asks, *bps)?)?;
        }
        row.set_item(intern!(py, "total_bid_volume"), cum_bids.last().copied().unwrap_or(0.0))?;
        row.set_item(intern!(py, "total_ask_volume"), cum_asks.last().copied().unwrap_or(0.0))?;
        row.set_item(intern!(py, "bid_levels"), bids.len())?;
        row.set_item(intern!(py, "ask_levels"), asks.len())?;
        if self.keep_raw {
            let raw = |side: &[(f64, f64)]| PyList::new_bound(py, side.iter().map(|&(p, q)| PyList::new_bound(py, [p, q])));
            row.set_item(intern!(py, "bids_raw"), raw(bids))?;
            row.set_item(intern!(py, "asks_raw"), raw(asks))?;
        }
        Ok(())
    }
}
