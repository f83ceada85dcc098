//! A deterministic synthetic trade stream and a small spec that exercises every path of the feature engine,
//! for the cross-target bit pin (core's tests, under QEMU and Miri) and for firmware examples that want to
//! check their build against it. No allocation.

use super::spec::{FeatureSpec, WindowList};
use super::{Side, Trade};

/// The session gap of [`pin_spec`], in milliseconds.
pub const PIN_SESSION_GAP_MS: u32 = 60_000;

/// A spec for the bit pin: every list used, a capacity of 64 trades (so that the 30 s and 50 s time windows
/// are often clipped to it), windows equal to the capacity, and a one-minute session gap.
pub fn pin_spec() -> FeatureSpec {
    let list = |items: &[u32]| WindowList::new(items).unwrap_or(WindowList::EMPTY);
    FeatureSpec {
        return_lags_trades: list(&[1, 3, 63]),
        return_lags_ms: list(&[250, 2_000]),
        flow_windows_trades: list(&[8, 64]),
        flow_windows_ms: list(&[30_000]),
        volatility_windows_trades: list(&[4, 32]),
        intensity_windows_ms: list(&[1_000, 50_000]),
        vwap_windows_trades: list(&[16]),
        vwap_windows_ms: list(&[2_000, 30_000]),
        range_windows_trades: list(&[5, 64]),
        session_gap_ms: PIN_SESSION_GAP_MS,
        capacity: 64,
        tick_size: 0.25,
        size_unit: 1.0,
        input: super::market::InputSpec::TRADES,
    }
}

/// An endless, deterministic stream of trades: bursts at equal timestamps, fast and slow stretches, session
/// breaks (every 997th trade, and now and then a long random gap), known and unknown sides, zero and large
/// sizes, one-tick moves and rarer jumps, prices never below 1 tick.
#[derive(Debug, Clone)]
pub struct SyntheticTrades {
    state: u64,
    index: u64,
    time_ms: i64,
    price_ticks: i64,
}

impl SyntheticTrades {
    /// The stream for `seed` (any value; 0 is replaced by a fixed odd constant).
    pub fn new(seed: u64) -> SyntheticTrades {
        SyntheticTrades {
            state: if seed == 0 {
                0x9e37_79b9_7f4a_7c15
            } else {
                seed
            },
            index: 0,
            time_ms: 1_378_054_800_000,
            price_ticks: 6_560,
        }
    }

    /// xorshift64.
    fn next_random(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }
}

impl Iterator for SyntheticTrades {
    type Item = Trade;

    fn next(&mut self) -> Option<Trade> {
        let r = self.next_random();
        // A fast stretch of 200 trades in every 600 (tens of trades a second, so that the 30 s and 50 s
        // windows hold more than the capacity), and slow ones with gaps now and then above a minute.
        let fast = self.index % 600 < 200;
        let step = match (r % 16, fast) {
            (0..=5, _) => 0,
            (_, true) => (r >> 8) % 100,
            (6..=11, false) => (r >> 8) % 400,
            (12..=14, false) => (r >> 8) % 6_000,
            _ => (r >> 8) % 62_000,
        };
        let gap = if self.index % 997 == 500 {
            2 * u64::from(PIN_SESSION_GAP_MS)
        } else {
            0
        };
        self.time_ms = self
            .time_ms
            .saturating_add(i64::try_from(step + gap).unwrap_or(0));
        let move_ticks = match (r >> 24) % 32 {
            0..=9 => -1,
            10..=19 => 1,
            20 => -12,
            21 => 12,
            _ => 0,
        };
        self.price_ticks = (self.price_ticks + move_ticks).max(1);
        let size_lots = match (r >> 32) % 40 {
            0 => 0,
            1 => 5_000 + ((r >> 40) % 1_000) as u32,
            _ => 1 + ((r >> 40) % 30) as u32,
        };
        let side = match (r >> 48) % 3 {
            0 => Side::Unknown,
            1 => Side::Buy,
            _ => Side::Sell,
        };
        self.index += 1;
        Some(Trade {
            time_ms: self.time_ms,
            price_ticks: self.price_ticks,
            size_lots,
            side,
        })
    }
}
