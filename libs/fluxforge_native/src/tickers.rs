//! A ticker envelope read by the kernel (`TickLane`): the fields msgspec decodes into
//! `TickerTick`, every value a number or null. Decoding a ticker with msgspec and handing it
//! through the pipeline's Python cost ~3 us, twice what applying it costs.

use crate::envelope::{self, Envelope};
use crate::json::Reader;

/// The value fields of `TickerTick`, in its order.
const NAMES: [&[u8]; 7] = [b"bid", b"ask", b"bid_size", b"ask_size", b"last", b"base_volume", b"quote_volume"];
/// Which of them are prices (positive, from the smallest quantity on) rather than sizes and
/// volumes (which may be 0).
pub(crate) const PRICES: [bool; 7] = [true, true, false, false, true, false, false];

/// A ticker envelope's fields (names not yet checked to be UTF-8).
pub(crate) struct TickerFields<'a> {
    pub envelope: Envelope<'a>,
    /// bid, ask, bid_size, ask_size, last, base_volume, quote_volume: None where absent or null.
    pub values: [Option<f64>; 7],
}

/// The fields of a ticker envelope of the plain shape (no escapes, times of up to 18 digits, each
/// field once), or None: for anything else msgspec decodes it and words any error.
pub(crate) fn scan_ticker(bytes: &[u8]) -> Option<TickerFields<'_>> {
    let mut ticker = TickerFields { envelope: Envelope::new(b"ticker"), values: [None; 7] };
    let seen = Reader::new(bytes).object_fields(|key, r| match ticker.envelope.field(key, r)? {
        0 => Some(match NAMES.iter().position(|&name| name == key) {
            Some(i) => {
                ticker.values[i] = if r.null() { None } else { Some(r.float().ok()?) };
                32 << i
            }
            None => 0,
        }),
        common => Some(common),
    })?;
    (seen & envelope::REQUIRED == envelope::REQUIRED).then_some(ticker)
}
