//! Trade vectors (`TQT1`, written by `tickq export --trade-vectors N`, see `host/src/trade_vectors.rs`) and the
//! streaming run loop: raw trades through [`StreamSession`], each signal checked against the host's.
//!
//! One line per trade that gives a signal, and a summary:
//!
//! ```text
//! trade 130 signal 2 logits -5,3,12 ok ticks=1234
//! stream_summary trades=400 signals=270 mismatches=0 ticks_min=... ticks_median=... ticks_max=... ticks_total=...
//! ```

use core::fmt::{self, Write};

use tickq_core::features::{Side, Trade};
use tickq_core::stream::{StreamSession, Tick};

use crate::{Timer, le_u32};

/// The magic bytes of a trade vector file.
pub const TRADE_MAGIC: &[u8; 4] = b"TQT1";

/// A parsed `TQT1` file.
#[derive(Debug, Clone, Copy)]
pub struct TradeVectors<'a> {
    body: &'a [u8],
    /// The number of trades.
    pub count: usize,
    /// Logits per signal.
    pub classes: usize,
    /// The CRC-32 of the blob the expected logits belong to.
    pub blob_crc: u32,
}

fn le_i64(b: &[u8]) -> i64 {
    let mut w = [0u8; 8];
    for (d, s) in w.iter_mut().zip(b) {
        *d = *s;
    }
    i64::from_le_bytes(w)
}

impl<'a> TradeVectors<'a> {
    /// Parses the header and checks the length.
    ///
    /// # Errors
    ///
    /// A short description of what is wrong.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, &'static str> {
        let (header, body) = bytes
            .split_at_checked(16)
            .ok_or("trades: truncated header")?;
        if header.get(..4) != Some(&TRADE_MAGIC[..]) {
            return Err("trades: bad magic");
        }
        let v = TradeVectors {
            body,
            count: le_u32(header.get(4..8).unwrap_or(&[])) as usize,
            classes: usize::from(u16::from_le_bytes([
                header.get(8).copied().unwrap_or(0),
                header.get(9).copied().unwrap_or(0),
            ])),
            blob_crc: le_u32(header.get(12..16).unwrap_or(&[])),
        };
        if body.len() != v.count * v.record_len() {
            return Err("trades: length does not match the header");
        }
        Ok(v)
    }

    fn record_len(&self) -> usize {
        (24 + self.classes).next_multiple_of(4)
    }

    /// Trade `i` and its expected logits (`None` while the stream warms up).
    pub fn get(&self, i: usize) -> Option<(Trade, Option<&'a [u8]>)> {
        let len = self.record_len();
        let r = self.body.get(i * len..(i + 1) * len)?;
        let side = match r.get(20)? {
            0 => Side::Unknown,
            1 => Side::Buy,
            2 => Side::Sell,
            _ => return None,
        };
        let trade = Trade {
            time_ms: le_i64(r.get(0..8)?),
            price_ticks: le_i64(r.get(8..16)?),
            size_lots: le_u32(r.get(16..20)?),
            side,
        };
        let logits = r.get(24..24 + self.classes)?;
        Some((trade, (*r.get(21)? == 1).then_some(logits)))
    }
}

/// What the streaming loop found.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamSummary {
    /// Trades pushed.
    pub trades: usize,
    /// Trades that gave a signal.
    pub signals: usize,
    /// Trades whose signal or logits differ from the host's, or that gave a signal where the host has none (or
    /// the other way round), or that the engine refused.
    pub mismatches: usize,
    /// The fewest timer ticks one trade took, from raw trade to signal.
    pub ticks_min: u32,
    /// The most.
    pub ticks_max: u32,
    /// The sum over all trades.
    pub ticks_total: u64,
}

/// Pushes every trade through `stream`, prints a `trade` line per signal and returns the summary; `ticks` keeps
/// each trade's timer ticks (as many as fit) for a median.
///
/// # Errors
///
/// The writer's error.
#[inline(never)]
pub fn run_trades<W: Write, T: Timer>(
    stream: &mut StreamSession<'_, '_, '_>,
    trades: &TradeVectors<'_>,
    out: &mut W,
    timer: &mut T,
    ticks: &mut [u32],
) -> Result<StreamSummary, fmt::Error> {
    let mut s = StreamSummary {
        ticks_min: u32::MAX,
        ..StreamSummary::default()
    };
    for i in 0..trades.count {
        let Some((trade, expected)) = trades.get(i) else {
            s.mismatches += 1;
            break;
        };
        let start = timer.now();
        let tick = stream.push_trade(&trade);
        let end = timer.now();
        let took = timer.elapsed(start, end);
        if let Some(slot) = ticks.get_mut(i) {
            *slot = took;
        }
        s.trades += 1;
        s.ticks_min = s.ticks_min.min(took);
        s.ticks_max = s.ticks_max.max(took);
        s.ticks_total += u64::from(took);
        match (tick, expected) {
            (Ok(Tick::Signal(p)), Some(expected)) => {
                s.signals += 1;
                let logits = p.logits();
                let ok = logits.len() == expected.len()
                    && logits.iter().zip(expected).all(|(&a, &b)| a == b as i8);
                s.mismatches += usize::from(!ok);
                write!(out, "trade {i} signal {} logits ", p.signal())?;
                for (k, l) in logits.iter().enumerate() {
                    if k > 0 {
                        out.write_char(',')?;
                    }
                    write!(out, "{l}")?;
                }
                writeln!(out, "{} ticks={took}", if ok { " ok" } else { " MISMATCH" })?;
            }
            (Ok(Tick::Warming), None) => {}
            (Ok(_), _) => {
                s.mismatches += 1;
                writeln!(
                    out,
                    "trade {i} MISMATCH signal where the host has none, or none where it has one"
                )?;
            }
            (Err(e), _) => {
                s.mismatches += 1;
                writeln!(out, "trade {i} MISMATCH refused: {e}")?;
            }
        }
    }
    if s.trades == 0 {
        s.ticks_min = 0;
    }
    Ok(s)
}

/// The median of `ticks` (sorted in place); 0 for none.
pub fn median(ticks: &mut [u32]) -> u32 {
    ticks.sort_unstable();
    ticks.get(ticks.len() / 2).copied().unwrap_or(0)
}
