//! The static features of one order-book snapshot (docs/design.md "Feature contracts"), written
//! into an HF row when its interval closes: mid, spread, microprice, each level's price and size
//! with the cumulative imbalance down to it, the depth within each band around the mid. A row of
//! ten levels holds ~60 of them: made here, they stay machine floats in the row's cells.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::columns::Kind;
use crate::hf_rows::ColumnFinder;
use crate::rows::Cell;

/// The names of an HF row's book columns under one config (`book_column_names`): per level bid
/// price, bid size, ask price, ask size and imbalance; the bands as (bps, bid depth, ask depth).
pub type BookNames = (
    Vec<String>,
    Vec<String>,
    Vec<String>,
    Vec<String>,
    Vec<String>,
    Vec<(f64, String, String)>,
);

const SCALARS: [&str; 7] = [
    "mid",
    "spread",
    "rel_spread",
    "microprice",
    "microprice_deviation",
    "total_bid_volume",
    "total_ask_volume",
];

/// Where the book columns of an HF row go in its cells.
pub struct BookColumns {
    /// Per level: bid price, bid size, ask price, ask size, imbalance.
    levels: Vec<[usize; 5]>,
    /// (band in basis points of the mid, bid depth column, ask depth column)
    bands: Vec<(f64, usize, usize)>,
    /// The columns of `SCALARS`, in its order.
    scalars: [usize; 7],
    /// bid_levels, ask_levels
    counts: [usize; 2],
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

impl BookColumns {
    pub fn new(names: BookNames, finder: &mut ColumnFinder) -> PyResult<Self> {
        let (bid_px, bid_sz, ask_px, ask_sz, imbalance, bands) = names;
        let count = bid_px.len();
        if [&bid_sz, &ask_px, &ask_sz, &imbalance].iter().any(|names| names.len() != count) {
            return Err(PyValueError::new_err("every level column needs one name per level"));
        }
        let mut levels = Vec::with_capacity(count);
        for i in 0..count {
            let mut level = [0; 5];
            for (slot, name) in level.iter_mut().zip([&bid_px[i], &bid_sz[i], &ask_px[i], &ask_sz[i], &imbalance[i]]) {
                *slot = finder.take(name, Kind::F64)?;
            }
            levels.push(level);
        }
        let bands = bands
            .iter()
            .map(|(bps, bid, ask)| Ok((*bps, finder.take(bid, Kind::F64)?, finder.take(ask, Kind::F64)?)))
            .collect::<PyResult<_>>()?;
        let mut scalars = [0; 7];
        for (slot, name) in scalars.iter_mut().zip(SCALARS) {
            *slot = finder.take(name, Kind::F64)?;
        }
        let counts = [finder.take("bid_levels", Kind::I64)?, finder.take("ask_levels", Kind::I64)?];
        Ok(BookColumns { levels, bands, scalars, counts })
    }

    /// Writes the features of a non-empty, uncrossed book into `row`.
    pub fn write(&self, bids: &[(f64, f64)], asks: &[(f64, f64)], row: &mut [Cell]) -> PyResult<()> {
        let (Some(&(pb, qb)), Some(&(pa, qa))) = (bids.first(), asks.first()) else {
            return Err(PyValueError::new_err("a book side is empty"));
        };
        let mid = (pb + pa) / 2.0;
        let microprice = (qb * pa + qa * pb) / (qb + qa);
        let levels = self.levels.len();
        let (mut cum_bids, mut cum_asks) = (Vec::with_capacity(levels), Vec::with_capacity(levels));
        for (i, &[bid_px, bid_sz, ask_px, ask_sz, imbalance]) in self.levels.iter().enumerate() {
            for (side, px, sz, cumulative) in [(bids, bid_px, bid_sz, &mut cum_bids), (asks, ask_px, ask_sz, &mut cum_asks)] {
                let (price, size) = match side.get(i) {
                    Some(&(price, size)) => {
                        cumulative.push(cumulative.last().copied().unwrap_or(0.0) + size);
                        (Cell::F64(price), Cell::F64(size))
                    }
                    None => (Cell::Null, Cell::Null),
                };
                row[px] = price;
                row[sz] = size;
            }
            let (b, a) = (cum_bids.last().copied().unwrap_or(0.0), cum_asks.last().copied().unwrap_or(0.0));
            row[imbalance] = Cell::F64((b - a) / (b + a));
        }
        let bid_bps: Vec<f64> = bids.iter().map(|&(price, _)| (mid - price) / mid * 1e4).collect();
        let ask_bps: Vec<f64> = asks.iter().map(|&(price, _)| (price - mid) / mid * 1e4).collect();
        for &(bps, bid, ask) in &self.bands {
            row[bid] = Cell::F64(depth(&bid_bps, &cum_bids, bps)?);
            row[ask] = Cell::F64(depth(&ask_bps, &cum_asks, bps)?);
        }
        let values = [
            mid,
            pa - pb,
            (pa - pb) / mid,
            microprice,
            microprice - mid,
            cum_bids.last().copied().unwrap_or(0.0),
            cum_asks.last().copied().unwrap_or(0.0),
        ];
        for (&column, value) in self.scalars.iter().zip(values) {
            row[column] = Cell::F64(value);
        }
        row[self.counts[0]] = Cell::I64(bids.len() as i64);
        row[self.counts[1]] = Cell::I64(asks.len() as i64);
        Ok(())
    }

    /// The book columns of a row without a book (a symbol whose first event was not a book): null,
    /// as a row's cells start, but for the level counts, which are zero.
    pub fn write_empty(&self, row: &mut [Cell]) {
        for &column in &self.counts {
            row[column] = Cell::I64(0);
        }
    }
}
