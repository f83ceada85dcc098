//! Trade test vectors (`TQT1`): raw trades and the signal the host pipeline gives for each, for firmware that
//! streams trades through `tickq_core::stream::StreamSession` and checks itself bit for bit.
//!
//! # Format
//!
//! All integers are little-endian.
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..4 | magic `TQT1` |
//! | 4..8 | u32 trade count `n` |
//! | 8..10 | u16 classes `C` |
//! | 10..12 | reserved, 0 |
//! | 12..16 | u32 CRC-32 of the blob the logits belong to |
//! | 16.. | `n` records of `24 + C` bytes, zero-padded to a multiple of 4 |
//!
//! A record: i64 `time_ms`, i64 `price_ticks`, u32 `size_lots`, u8 side (0 unknown, 1 buy, 2 sell), u8 expected
//! (0: no signal yet, 1: a signal with these logits), 2 bytes 0, then `C` int8 logits (0 when there is no
//! signal).

use tickq_core::Model;
use tickq_core::features::{Side, Trade as DeviceTrade};

use crate::data::Trade;
use crate::replay::{ReplayError, host_predictions};

/// The magic bytes that open a trade vector file.
pub const TRADE_VECTORS_MAGIC: &[u8; 4] = b"TQT1";

/// The header length.
pub const TRADE_VECTORS_HEADER_LEN: usize = 16;

/// One record: a trade in device units and the logits the host pipeline expects for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeVector {
    /// The trade, in the blob's ticks and lots.
    pub trade: DeviceTrade,
    /// The expected int8 logits, or `None` while the stream warms up.
    pub logits: Option<Vec<i8>>,
}

fn record_len(classes: usize) -> usize {
    (24 + classes).next_multiple_of(4)
}

/// The `TQT1` bytes of `trades` (the first `count` of them, fed from a fresh stream) with the host pipeline's
/// logits for each.
///
/// # Errors
///
/// [`ReplayError`] when the blob cannot stream or the trades do not fit its feature spec.
pub fn trade_vectors(
    model: &Model<'_>,
    trades: &[Trade],
    count: usize,
) -> Result<Vec<u8>, ReplayError> {
    let trades = trades.get(..count.min(trades.len())).unwrap_or(&[]);
    let (device, expected) = host_predictions(model, trades)?;
    let classes = model.classes();
    let mut out = Vec::with_capacity(TRADE_VECTORS_HEADER_LEN + device.len() * record_len(classes));
    out.extend_from_slice(TRADE_VECTORS_MAGIC);
    // Both fit: `limits::VECTORS` bounds the count by u32::MAX and the core bounds the classes by 256.
    out.extend_from_slice(
        &u32::try_from(device.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&u16::try_from(classes).unwrap_or(u16::MAX).to_le_bytes());
    out.extend_from_slice(&[0; 2]);
    out.extend_from_slice(&model.crc32().to_le_bytes());
    for (trade, logits) in device.iter().zip(&expected) {
        let start = out.len();
        out.extend_from_slice(&trade.time_ms.to_le_bytes());
        out.extend_from_slice(&trade.price_ticks.to_le_bytes());
        out.extend_from_slice(&trade.size_lots.to_le_bytes());
        out.push(match trade.side {
            Side::Unknown => 0,
            Side::Buy => 1,
            Side::Sell => 2,
        });
        out.push(u8::from(logits.is_some()));
        out.extend_from_slice(&[0; 2]);
        match logits {
            Some(l) => out.extend(l.iter().map(|&v| v as u8)),
            None => out.extend(std::iter::repeat_n(0u8, classes)),
        }
        out.resize(start + record_len(classes), 0);
    }
    Ok(out)
}

/// Parses `TQT1` bytes back (for tests and tools); `None` for a malformed file.
pub fn parse_trade_vectors(bytes: &[u8]) -> Option<(u32, Vec<TradeVector>)> {
    let (header, body) = bytes.split_at_checked(TRADE_VECTORS_HEADER_LEN)?;
    if &header[..4] != TRADE_VECTORS_MAGIC {
        return None;
    }
    let count = u32::from_le_bytes(header[4..8].try_into().ok()?) as usize;
    let classes = usize::from(u16::from_le_bytes(header[8..10].try_into().ok()?));
    let crc = u32::from_le_bytes(header[12..16].try_into().ok()?);
    let len = record_len(classes);
    if body.len() != count.checked_mul(len)? {
        return None;
    }
    let vectors = body
        .chunks_exact(len)
        .map(|r| {
            let side = match r[20] {
                0 => Side::Unknown,
                1 => Side::Buy,
                2 => Side::Sell,
                _ => return None,
            };
            let trade = DeviceTrade {
                time_ms: i64::from_le_bytes(r[0..8].try_into().ok()?),
                price_ticks: i64::from_le_bytes(r[8..16].try_into().ok()?),
                size_lots: u32::from_le_bytes(r[16..20].try_into().ok()?),
                side,
            };
            let logits = match r[21] {
                0 => None,
                1 => Some(r[24..24 + classes].iter().map(|&b| b as i8).collect()),
                _ => return None,
            };
            Some(TradeVector { trade, logits })
        })
        .collect::<Option<Vec<_>>>()?;
    Some((crc, vectors))
}
