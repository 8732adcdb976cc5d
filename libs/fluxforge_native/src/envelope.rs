//! The fields every tick envelope has (docs/design.md "Raw messages"): its type tag, names and
//! times, read as msgspec decodes them (no escapes, integers of up to 18 digits), for the kinds
//! the kernel reads itself.

use crate::json::Reader;

pub const TYPE: u32 = 1;
pub const EXCHANGE: u32 = 2;
pub const SYMBOL: u32 = 4;
pub const RECV_TS: u32 = 8;
pub const TS: u32 = 16;
/// The bits of the fields every envelope must have; a kind's own fields take the bits above.
pub const REQUIRED: u32 = TYPE | EXCHANGE | SYMBOL | RECV_TS | TS;

/// An envelope's common fields (names not yet checked to be UTF-8).
pub struct Envelope<'a> {
    /// The type tag the envelope must carry.
    tag: &'static [u8],
    pub exchange: &'a [u8],
    pub symbol: &'a [u8],
    pub recv_ts: i64,
    pub ts: Option<i64>,
}

impl<'a> Envelope<'a> {
    pub fn new(tag: &'static [u8]) -> Self {
        Envelope { tag, exchange: b"", symbol: b"", recv_ts: 0, ts: None }
    }

    /// Reads the value of `key` where it is a common field: Some(its bit), 0 for another key
    /// (nothing read), None for a value msgspec must decode (or another type).
    pub fn field(&mut self, key: &[u8], r: &mut Reader<'a>) -> Option<u32> {
        Some(match key {
            b"type" => {
                if r.plain_bytes()? != self.tag {
                    return None;
                }
                TYPE
            }
            b"exchange" => {
                self.exchange = r.plain_bytes()?;
                EXCHANGE
            }
            b"symbol" => {
                self.symbol = r.plain_bytes()?;
                SYMBOL
            }
            b"recv_ts" => {
                self.recv_ts = r.int()?;
                RECV_TS
            }
            b"ts" => {
                self.ts = if r.null() { None } else { Some(r.int()?) };
                TS
            }
            _ => 0,
        })
    }
}
