//! The streaming feature engine: one [`Trade`] in, one row of features out, in O(1) amortized time and a
//! caller-provided state of [`FeatureSpec::state_words`] words.
//!
//! # State
//!
//! The state slice is cut once, in [`FeatureEngine::new`], into
//!
//! - a ring of the last `capacity` trades, one row of [`RING_WORDS_PER_TRADE`] words each: the time, the price
//!   and the running totals *before* the trade of its size, signed size, notional and squared one-trade return
//!   (so the sum over the trades `lo..=i` is the running total now minus the row at `lo`, with no per-window
//!   sums to maintain). A window's reads at its oldest trade then share one or two cache lines, where a ring of
//!   columns would touch one line per column;
//! - per range window of `w` trades, a max and a min monotonic deque of `w` absolute trade indices each.
//!
//! The per-window bookkeeping of fixed size (the start of each distinct time window, the deques' heads and
//! lengths) lives in the engine value, next to the per-session scalars.
//!
//! Totals are kept with wrapping `i64` arithmetic: the difference of two totals is exact whenever the true
//! window sum fits an `i64`, which for sizes and counts always holds (at most [`MAX_CAPACITY`] trades of
//! `u32::MAX` lots) and for notionals holds while a window's `Σ (p_j - p_first) v_j` stays within ±2⁶³ ticks
//! times lots.
//!
//! # Arithmetic
//!
//! Integers wherever possible; the remaining floats are `f32` with correctly rounded `+ - * / sqrt`, integer to
//! float conversions, the `libm` crate's `sqrtf` and the engine's own [`ln_1p`] (itself plain `f32` arithmetic),
//! in the order written below, so the bits are
//! the same on every target (`docs/ARITHMETIC.md`, "The feature engine").
//!
//! [`MAX_CAPACITY`]: super::MAX_CAPACITY
#![deny(clippy::indexing_slicing)]

use core::fmt;

use super::log::ln_1p;
use super::market::InputKind;
use super::spec::{FeatureSpec, MAX_WINDOWS, RING_WORDS_PER_TRADE, SpecError};
use super::{Side, Trade};

/// Returns are in basis points.
const BASIS_POINTS: f32 = 1e4;

/// Squared one-trade returns (bp²) are summed in fixed point with this many fraction bits.
pub const RET2_FRACTION_BITS: u32 = 16;

/// The largest fixed-point squared one-trade return one trade adds (2⁴² = 2²⁶ bp², a one-trade move of about
/// 8,192 bp); larger ones saturate there, so [`MAX_CAPACITY`](super::MAX_CAPACITY) of them still sum within
/// an `i64`.
pub const MAX_RET2_FIXED: i64 = 1 << 42;

/// The most features a spec can have: every list full (13 features per window slot, counting the lists that
/// give two), `sign` and the per-trade features.
pub const MAX_FEATURES: usize = 13 * MAX_WINDOWS + 1 + super::spec::PER_TRADE_FEATURES;

/// The words of a ring row, in order.
const TIME: usize = 0;
const PRICE: usize = 1;
const SIZE: usize = 2;
const SIGNED: usize = 3;
const NOTIONAL: usize = 4;
const RET2: usize = 5;

/// Why [`FeatureEngine::new`] refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EngineError {
    /// The spec does not pass [`FeatureSpec::validate`].
    Spec(SpecError),
    /// The state slice is shorter than [`FeatureSpec::state_words`].
    StateTooSmall {
        /// Words the spec needs.
        needed: usize,
        /// Words given.
        given: usize,
    },
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Spec(e) => write!(f, "feature engine: {e}"),
            EngineError::StateTooSmall { needed, given } => write!(
                f,
                "feature engine: the state holds {given} words, the spec needs {needed}"
            ),
        }
    }
}

impl core::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            EngineError::Spec(e) => Some(e),
            EngineError::StateTooSmall { .. } => None,
        }
    }
}

impl core::error::Error for TradeError {}

impl From<SpecError> for EngineError {
    fn from(e: SpecError) -> Self {
        EngineError::Spec(e)
    }
}

/// Why [`FeatureEngine::push`] refused a trade; the engine's state is then unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeError {
    /// The price is below 1 tick.
    Price {
        /// The price found, in ticks.
        found: i64,
    },
    /// The trade is earlier than the previous one.
    TimeBackwards {
        /// The previous trade's time (ms).
        previous: i64,
        /// This trade's time (ms).
        found: i64,
    },
    /// The output slice is shorter than [`FeatureSpec::feature_count`].
    OutputTooShort {
        /// Features the spec produces.
        needed: usize,
        /// Length of the slice given.
        given: usize,
    },
    /// The engine's spec reads bars: it has no trade state (a book spec takes trades, for its trade-sign
    /// windows).
    WrongInput {
        /// The kind the spec reads.
        input: InputKind,
    },
}

impl fmt::Display for TradeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TradeError::Price { found } => {
                write!(f, "trade price {found} ticks is below 1 tick")
            }
            TradeError::TimeBackwards { previous, found } => write!(
                f,
                "trade time {found} ms is before the previous trade's {previous} ms"
            ),
            TradeError::OutputTooShort { needed, given } => write!(
                f,
                "feature output holds {given} values, the spec produces {needed}"
            ),
            TradeError::WrongInput { input } => write!(
                f,
                "the feature spec reads {input}, not trades: push {input} to this engine"
            ),
        }
    }
}

/// The log return `ln(now / then)` in basis points: `1e4 * ln_1p((now - then) / then)` for a rise and
/// `-1e4 * ln_1p((then - now) / now)` for a fall, so that the ratio is never below 0 (a fall computed the
/// first way could round to `ln(0) = -inf` for prices above 2²⁴ ticks) and `r(a, b) = -r(b, a)` exactly;
/// 0 when the prices are equal. Both prices are at least 1 tick, so the integer differences cannot overflow.
#[inline]
pub fn log_return_bp(now: i64, then: i64) -> f32 {
    if now > then {
        BASIS_POINTS * ln_1p((now - then) as f32 / then as f32)
    } else if now < then {
        -(BASIS_POINTS * ln_1p((then - now) as f32 / now as f32))
    } else {
        0.0
    }
}

/// `ln(1 + n)` of a count, through [`ln_1p`]; a table for the small counts most trades have, holding the same
/// bits `ln_1p` gives.
#[derive(Clone)]
struct CountLogs {
    table: [f32; COUNT_LOG_TABLE],
}

/// Counts below this come from [`CountLogs`]' table.
const COUNT_LOG_TABLE: usize = 256;

impl CountLogs {
    fn new() -> CountLogs {
        let mut table = [0.0f32; COUNT_LOG_TABLE];
        for (n, v) in table.iter_mut().enumerate() {
            *v = ln_1p(n as f32);
        }
        CountLogs { table }
    }

    #[inline]
    fn log1p(&self, n: u64) -> f32 {
        match usize::try_from(n).ok().and_then(|i| self.table.get(i)) {
            Some(&v) => v,
            None => ln_1p(n as f32),
        }
    }
}

/// The streaming feature engine of one [`FeatureSpec`], over a state slice it borrows.
///
/// [`push`](FeatureEngine::push) each trade in time order; it writes that trade's
/// [`feature_count`](FeatureSpec::feature_count) features in the order of
/// [`for_each_feature`](FeatureSpec::for_each_feature). The features are raw (the blob's input quantizer
/// standardizes them) and depend only on the trades pushed since [`new`](FeatureEngine::new) or
/// [`reset`](FeatureEngine::reset).
pub struct FeatureEngine<'s> {
    spec: FeatureSpec,
    /// Ring rows, `capacity` of them, [`RING_WORDS_PER_TRADE`] words each in the order `TIME`, `PRICE`, `SIZE`,
    /// `SIGNED`, `NOTIONAL`, `RET2`.
    ring: &'s mut [i64],
    /// Rows in the ring: the spec's capacity.
    ring_len: usize,
    /// Per range window of `w` trades: its max deque then its min deque, `w` absolute trade indices each.
    deques: &'s mut [i64],
    capacity: u64,
    /// The distinct time windows, and for each time list the pointer of each of its windows.
    time_windows: [u32; 4 * MAX_WINDOWS],
    time_window_count: usize,
    time_pointer_of: [[u8; MAX_WINDOWS]; 4],
    /// Per distinct time window: the absolute index of its oldest trade, and that trade's ring slot.
    window_start: [u64; 4 * MAX_WINDOWS],
    window_start_slot: [usize; 4 * MAX_WINDOWS],
    /// Per range window, its max deque then its min deque: the position of the front in the window's `w`
    /// words, and the number of entries.
    deque_head: [usize; 2 * MAX_WINDOWS],
    deque_len: [usize; 2 * MAX_WINDOWS],
    warm_trades: u64,
    warm_ms: i64,
    feature_count: usize,
    logs: CountLogs,
    /// Per output: the last `ln_1p` argument's bits and its result (`ln_1p(0) = 0` to start).
    memo: [(u32, f32); MAX_FEATURES],
    /// Trades pushed since the last reset: the absolute index of the next trade.
    pushed: u64,
    /// Ring slot of the newest trade.
    slot: usize,
    /// Time and price of the newest trade.
    last_time: i64,
    last_price: i64,
    session_start: u64,
    session_start_time: i64,
    /// Price of the session's first trade, the origin of the notional totals.
    session_first_price: i64,
    /// The tick rule: sign of the session's last price change, 0 before the first.
    tick_sign: i64,
    last_change: u64,
    last_change_time: i64,
    /// Lots printed at the newest trade's timestamp in this session, the newest included.
    burst_lots: u64,
    /// Running totals including the newest trade (wrapping).
    total_size: i64,
    total_signed: i64,
    total_notional: i64,
    total_ret2: i64,
    /// A bars or book spec's ring (empty for a trades spec): see [`market`].
    market_ring: &'s mut [i64],
    /// A bars or book spec's scalars.
    market: market::MarketState,
}

impl fmt::Debug for FeatureEngine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeatureEngine")
            .field("spec", &self.spec)
            .field("trades_seen", &self.pushed)
            .field("session_start", &self.session_start)
            .finish_non_exhaustive()
    }
}

impl<'s> FeatureEngine<'s> {
    /// An engine for `spec` keeping its state in `state`, which must hold at least
    /// [`FeatureSpec::state_words`] words (extra words are left alone). The contents of `state` do not matter.
    ///
    /// # Errors
    ///
    /// [`EngineError::Spec`] when the spec is invalid, [`EngineError::StateTooSmall`] when `state` is short.
    pub fn new(spec: &FeatureSpec, state: &'s mut [i64]) -> Result<FeatureEngine<'s>, EngineError> {
        spec.validate()?;
        let needed = spec.state_words();
        let given = state.len();
        if given < needed {
            return Err(EngineError::StateTooSmall { needed, given });
        }
        let too_small = EngineError::StateTooSmall { needed, given };
        let capacity = usize::try_from(spec.capacity).map_err(|_| too_small)?;
        let (time_windows, time_window_count) = spec.distinct_time_windows();
        let mut time_pointer_of = [[0u8; MAX_WINDOWS]; 4];
        for ((_, list), map) in spec.time_lists().iter().zip(&mut time_pointer_of) {
            for (&d, index) in list.as_slice().iter().zip(map.iter_mut()) {
                let position = time_windows
                    .get(..time_window_count)
                    .and_then(|w| w.iter().position(|&x| x == d))
                    .unwrap_or(0);
                *index = u8::try_from(position).unwrap_or(0);
            }
        }
        let (rest, _) = state.split_at_mut_checked(needed).ok_or(too_small)?;
        let (ring, deques, market_ring): (&mut [i64], &mut [i64], &mut [i64]) =
            if spec.input.kind == InputKind::Trades {
                let ring_words = capacity
                    .checked_mul(RING_WORDS_PER_TRADE)
                    .ok_or(too_small)?;
                let (ring, deques) = rest.split_at_mut_checked(ring_words).ok_or(too_small)?;
                (ring, deques, &mut [])
            } else {
                (&mut [], &mut [], rest)
            };
        let (warm_trades, warm_ms) = spec.warm_up();
        let mut engine = FeatureEngine {
            spec: *spec,
            ring,
            ring_len: capacity,
            deques,
            capacity: u64::from(spec.capacity),
            time_windows,
            time_window_count,
            time_pointer_of,
            window_start: [0; 4 * MAX_WINDOWS],
            window_start_slot: [0; 4 * MAX_WINDOWS],
            deque_head: [0; 2 * MAX_WINDOWS],
            deque_len: [0; 2 * MAX_WINDOWS],
            warm_trades: u64::from(warm_trades),
            warm_ms: i64::from(warm_ms),
            feature_count: spec.feature_count(),
            logs: CountLogs::new(),
            memo: [(0, 0.0); MAX_FEATURES],
            pushed: 0,
            slot: 0,
            last_time: 0,
            last_price: 0,
            session_start: 0,
            session_start_time: 0,
            session_first_price: 0,
            tick_sign: 0,
            last_change: 0,
            last_change_time: 0,
            burst_lots: 0,
            total_size: 0,
            total_signed: 0,
            total_notional: 0,
            total_ret2: 0,
            market_ring,
            market: market::MarketState::default(),
        };
        engine.reset();
        Ok(engine)
    }

    /// Forgets every trade: the next one starts a session, as the first after [`new`](FeatureEngine::new).
    pub fn reset(&mut self) {
        self.pushed = 0;
        self.slot = 0;
        self.last_time = 0;
        self.last_price = 0;
        self.session_start = 0;
        self.market = market::MarketState::default();
    }

    /// The spec the engine computes.
    pub fn spec(&self) -> &FeatureSpec {
        &self.spec
    }

    /// Trades pushed since [`new`](FeatureEngine::new) or the last [`reset`](FeatureEngine::reset).
    pub fn trades_seen(&self) -> u64 {
        self.pushed
    }

    /// Trades in the current session, the newest included (0 before the first trade).
    pub fn session_trades(&self) -> u64 {
        self.pushed - self.session_start
    }

    /// Pushes one trade and writes its features to `out[..feature_count]`, in the order of
    /// [`FeatureSpec::for_each_feature`]; `out[feature_count..]` is left alone.
    ///
    /// Returns whether the row is *valid*: its session holds at least `warm_up().0` earlier trades and spans
    /// at least `warm_up().1` ms, so that no window of the row is clipped by the session start.
    ///
    /// # Errors
    ///
    /// [`TradeError`] for a price below 1 tick, a time before the previous trade's or a short `out`; the state
    /// is then unchanged and `out` untouched.
    ///
    /// A book spec's engine takes trades too: they update its trade-sign windows only, `out` is left alone and
    /// the result is `false` (see [`push_book`](FeatureEngine::push_book)). A bars spec's engine refuses them
    /// with [`TradeError::WrongInput`].
    pub fn push(&mut self, trade: &Trade, out: &mut [f32]) -> Result<bool, TradeError> {
        if self.spec.input.kind != InputKind::Trades {
            return self.push_market_trade(trade);
        }
        if out.len() < self.feature_count {
            return Err(TradeError::OutputTooShort {
                needed: self.feature_count,
                given: out.len(),
            });
        }
        if trade.price_ticks < 1 {
            return Err(TradeError::Price {
                found: trade.price_ticks,
            });
        }
        let first = self.pushed == 0;
        if !first && trade.time_ms < self.last_time {
            return Err(TradeError::TimeBackwards {
                previous: self.last_time,
                found: trade.time_ms,
            });
        }
        let i = self.pushed;
        let t = trade.time_ms;
        let p = trade.price_ticks;
        let lots = trade.size_lots;
        let new_session = first || t.abs_diff(self.last_time) > u64::from(self.spec.session_gap_ms);
        let slot = if first || self.slot + 1 >= self.ring_len() {
            0
        } else {
            self.slot + 1
        };
        // Per-trade state, and the one-trade return.
        let (dt_prev_ms, ret1) = if new_session {
            self.session_start = i;
            self.session_start_time = t;
            self.session_first_price = p;
            self.tick_sign = 0;
            self.last_change = i;
            self.last_change_time = t;
            self.burst_lots = 0;
            self.total_size = 0;
            self.total_signed = 0;
            self.total_notional = 0;
            self.total_ret2 = 0;
            self.start_windows(i, slot);
            (0, 0.0)
        } else {
            let change = p - self.last_price;
            if change != 0 {
                self.tick_sign = change.signum();
                self.last_change = i;
                self.last_change_time = t;
            }
            if t != self.last_time {
                self.burst_lots = 0;
            }
            (t - self.last_time, log_return_bp(p, self.last_price))
        };
        self.burst_lots = self.burst_lots.saturating_add(u64::from(lots));
        let sign = match trade.side {
            Side::Buy => 1,
            Side::Sell => -1,
            Side::Unknown => self.tick_sign,
        };
        // The ring slot of this trade holds the totals before it.
        let ret2 = ((ret1 * ret1) * (1u64 << RET2_FRACTION_BITS) as f32) as i64;
        let ret2 = ret2.min(MAX_RET2_FIXED);
        let size = i64::from(lots);
        let notional = (p - self.session_first_price).wrapping_mul(size);
        let row = [
            t,
            p,
            self.total_size,
            self.total_signed,
            self.total_notional,
            self.total_ret2,
        ];
        let start = slot * RING_WORDS_PER_TRADE;
        if let Some(words) = self.ring.get_mut(start..start + RING_WORDS_PER_TRADE) {
            words.copy_from_slice(&row);
        }
        self.total_size = self.total_size.wrapping_add(size);
        self.total_signed = self.total_signed.wrapping_add(sign * size);
        self.total_notional = self.total_notional.wrapping_add(notional);
        self.total_ret2 = self.total_ret2.wrapping_add(ret2);
        self.pushed = i + 1;
        self.slot = slot;
        self.last_time = t;
        self.last_price = p;
        self.advance_time_windows();
        self.write_features(trade, sign, ret1, dt_prev_ms, out);
        Ok(i - self.session_start >= self.warm_trades
            && t.saturating_sub(self.session_start_time) >= self.warm_ms)
    }

    #[inline]
    fn ring_len(&self) -> usize {
        self.ring_len
    }

    /// The ring slot of the trade `back` trades before the newest (`back < capacity`).
    #[inline]
    fn slot_back(&self, back: u64) -> usize {
        let back = usize::try_from(back).unwrap_or(0);
        if back <= self.slot {
            self.slot - back
        } else {
            self.slot + self.ring_len() - back
        }
    }

    #[inline]
    fn ring_at(&self, column: usize, slot: usize) -> i64 {
        self.ring
            .get(slot * RING_WORDS_PER_TRADE + column)
            .copied()
            .unwrap_or(0)
    }

    /// The oldest trade any window of the newest trade may reach: the session start, or the oldest trade the
    /// ring still holds.
    #[inline]
    fn floor(&self) -> u64 {
        let newest = self.pushed - 1;
        self.session_start
            .max((newest + 1).saturating_sub(self.capacity))
    }

    /// Empties every window at a session start: the time windows begin at trade `index`, ring slot `slot`, and
    /// the range deques are empty.
    fn start_windows(&mut self, index: u64, slot: usize) {
        self.window_start = [index; 4 * MAX_WINDOWS];
        self.window_start_slot = [slot; 4 * MAX_WINDOWS];
        self.deque_len = [0; 2 * MAX_WINDOWS];
    }

    /// Moves every time window's oldest trade forward past the trades at or before `t - d`, and up to the floor.
    fn advance_time_windows(&mut self) {
        let newest = self.pushed - 1;
        let floor = self.floor();
        let t = self.last_time;
        let ring_len = self.ring_len();
        for k in 0..self.time_window_count.min(4 * MAX_WINDOWS) {
            let d = self.time_windows.get(k).copied().unwrap_or(0);
            let cutoff = t.saturating_sub(i64::from(d));
            let (Some(&start), Some(&start_slot)) =
                (self.window_start.get(k), self.window_start_slot.get(k))
            else {
                continue;
            };
            let (mut lo, mut at) = (start, start_slot);
            if lo < floor {
                lo = floor;
                at = self.slot_back(newest - floor);
            }
            let ring = &*self.ring;
            while lo < newest
                && ring
                    .get(at * RING_WORDS_PER_TRADE + TIME)
                    .is_some_and(|&time| time <= cutoff)
            {
                lo += 1;
                at = if at + 1 >= ring_len { 0 } else { at + 1 };
            }
            if let (Some(start), Some(start_slot)) = (
                self.window_start.get_mut(k),
                self.window_start_slot.get_mut(k),
            ) {
                *start = lo;
                *start_slot = at;
            }
        }
    }

    /// The oldest trade of the time window over pointer `k`, with its ring slot.
    #[inline]
    fn time_window(&self, k: usize) -> (u64, usize) {
        match (self.window_start.get(k), self.window_start_slot.get(k)) {
            (Some(&start), Some(&slot)) => (start, slot),
            _ => (self.pushed - 1, self.slot),
        }
    }

    /// The oldest trade of the window of the last `w` trades, clipped to the session, with its ring slot.
    #[inline]
    fn trade_window(&self, w: u32) -> (u64, usize) {
        let newest = self.pushed - 1;
        let lo = (self.pushed.saturating_sub(u64::from(w))).max(self.floor());
        (lo, self.slot_back(newest - lo))
    }

    /// The total of ring column `column` over the trades from ring slot `lo_slot` to the newest.
    #[inline]
    fn window_total(&self, column: usize, lo_slot: usize) -> i64 {
        let total = match column {
            SIZE => self.total_size,
            SIGNED => self.total_signed,
            NOTIONAL => self.total_notional,
            _ => self.total_ret2,
        };
        total.wrapping_sub(self.ring_at(column, lo_slot))
    }

    /// `svol` and `ofi` over the window starting at ring slot `lo_slot`, `svol` through the memo of output
    /// `site`.
    #[inline]
    fn flow(&mut self, site: usize, lo_slot: usize) -> (f32, f32) {
        let signed = self.window_total(SIGNED, lo_slot);
        let total = self.window_total(SIZE, lo_slot);
        let ofi = if total > 0 {
            (signed as f32 / total as f32).clamp(-1.0, 1.0)
        } else {
            0.0
        };
        (self.signed_log1p_at(site, signed), ofi)
    }

    /// `(p - VWAP) / tick` over the window starting at ring slot `lo_slot`, in ticks:
    /// `((p - p_first) V - N) / V` with the integer numerator in `i128`.
    #[inline]
    fn vwap_dev(&self, lo_slot: usize) -> f32 {
        let volume = self.window_total(SIZE, lo_slot);
        if volume <= 0 {
            return 0.0;
        }
        let notional = self.window_total(NOTIONAL, lo_slot);
        let offset = self.last_price - self.session_first_price;
        // The same integer converts to the same f32 from i64 or i128; i64 is much cheaper where it fits.
        let numerator = match offset
            .checked_mul(volume)
            .and_then(|x| x.checked_sub(notional))
        {
            Some(n) => n as f32,
            None => (i128::from(offset) * i128::from(volume) - i128::from(notional)) as f32,
        };
        numerator / volume as f32
    }

    /// Updates the max and min deques of the range window of `w` trades whose words start at `offset` in
    /// `deques`, and returns the window's high and low price.
    fn range_window(&mut self, window: usize, offset: usize, w: u32) -> (i64, i64) {
        let newest = self.pushed - 1;
        let p = self.last_price;
        let lo = (self.pushed.saturating_sub(u64::from(w))).max(self.floor());
        let w = w as usize;
        let mut extremes = [p, p];
        for (deque, extreme) in extremes.iter_mut().enumerate() {
            let is_max = deque == 0;
            let header = 2 * window + deque;
            let buffer = offset + deque * w;
            let (Some(&(mut head)), Some(&(mut len))) =
                (self.deque_head.get(header), self.deque_len.get(header))
            else {
                continue;
            };
            let wrap = |k: usize| if k >= w { k - w } else { k };
            let index_at = |deques: &[i64], position: usize| {
                deques
                    .get(buffer + position)
                    .and_then(|&x| u64::try_from(x).ok())
                    .unwrap_or(newest)
            };
            // Drop the front trades that left the window, then the back ones the new price dominates.
            while len > 0 && index_at(self.deques, head) < lo {
                head = wrap(head + 1);
                len -= 1;
            }
            while len > 0 {
                let back = index_at(self.deques, wrap(head + len - 1));
                let back_price = self.ring_at(PRICE, self.slot_back(newest - back));
                let dominated = if is_max {
                    back_price <= p
                } else {
                    back_price >= p
                };
                if !dominated {
                    break;
                }
                len -= 1;
            }
            if let Some(word) = self.deques.get_mut(buffer + wrap(head + len)) {
                *word = i64::try_from(newest).unwrap_or(i64::MAX);
            }
            len += 1;
            let front = index_at(self.deques, head);
            *extreme = self.ring_at(PRICE, self.slot_back(newest - front));
            if let (Some(h), Some(l)) = (
                self.deque_head.get_mut(header),
                self.deque_len.get_mut(header),
            ) {
                *h = head;
                *l = len;
            }
        }
        (extremes[0], extremes[1])
    }

    /// Pointer of the `n`-th window of time list `list` (0 returns, 1 flow, 2 intensity, 3 VWAP).
    #[inline]
    fn pointer(&self, list: usize, n: usize) -> usize {
        self.time_pointer_of
            .get(list)
            .and_then(|m| m.get(n))
            .map_or(0, |&k| usize::from(k))
    }

    /// [`ln_1p`]`(x)` for output `site`, remembering the last argument and result of each site: many features
    /// repeat their argument from one trade to the next, and the memo gives `ln_1p`'s own bits.
    #[inline]
    fn log1p_at(&mut self, site: usize, x: f32) -> f32 {
        let key = x.to_bits();
        match self.memo.get_mut(site) {
            Some(entry) if entry.0 == key => entry.1,
            Some(entry) => {
                let value = ln_1p(x);
                *entry = (key, value);
                value
            }
            None => ln_1p(x),
        }
    }

    /// [`log_return_bp`] through the memo of output `site`.
    #[inline]
    fn return_at(&mut self, site: usize, now: i64, then: i64) -> f32 {
        if now > then {
            BASIS_POINTS * self.log1p_at(site, (now - then) as f32 / then as f32)
        } else if now < then {
            -(BASIS_POINTS * self.log1p_at(site, (then - now) as f32 / now as f32))
        } else {
            0.0
        }
    }

    /// `sign(x) * ln(1 + |x|)` through the table of small counts, then the memo of output `site`.
    #[inline]
    fn signed_log1p_at(&mut self, site: usize, x: i64) -> f32 {
        let n = x.unsigned_abs();
        let magnitude = if n < COUNT_LOG_TABLE as u64 {
            self.logs.log1p(n)
        } else {
            self.log1p_at(site, n as f32)
        };
        if x < 0 { -magnitude } else { magnitude }
    }

    /// Computes the newest trade's features into `out`, in the order of [`FeatureSpec::for_each_feature`].
    fn write_features(
        &mut self,
        trade: &Trade,
        sign: i64,
        ret1: f32,
        dt_prev_ms: i64,
        out: &mut [f32],
    ) {
        let newest = self.pushed - 1;
        let p = self.last_price;
        let t = self.last_time;
        let mut site = 0usize;
        let mut put = |site: &mut usize, v: f32| {
            if let Some(o) = out.get_mut(*site) {
                *o = v;
            }
            *site += 1;
        };
        let floor = self.floor();
        let lists = [
            self.spec.return_lags_trades,
            self.spec.return_lags_ms,
            self.spec.flow_windows_trades,
            self.spec.flow_windows_ms,
            self.spec.volatility_windows_trades,
            self.spec.intensity_windows_ms,
            self.spec.vwap_windows_trades,
            self.spec.vwap_windows_ms,
            self.spec.range_windows_trades,
        ];
        let [
            return_lags_trades,
            return_lags_ms,
            flow_windows_trades,
            flow_windows_ms,
            volatility_windows_trades,
            intensity_windows_ms,
            vwap_windows_trades,
            vwap_windows_ms,
            range_windows_trades,
        ] = lists;
        for &k in return_lags_trades.as_slice() {
            let value = if k == 1 {
                ret1
            } else {
                let lo = newest.saturating_sub(u64::from(k)).max(floor);
                let then = self.ring_at(PRICE, self.slot_back(newest - lo));
                self.return_at(site, p, then)
            };
            put(&mut site, value);
        }
        for n in 0..return_lags_ms.len() {
            let (lo, _) = self.time_window(self.pointer(0, n));
            // The last trade at or before t - d is the one before the window, unless the window starts at the
            // floor.
            let reference = if lo > floor { lo - 1 } else { floor };
            let then = self.ring_at(PRICE, self.slot_back(newest - reference));
            let value = self.return_at(site, p, then);
            put(&mut site, value);
        }
        put(&mut site, sign as f32);
        for &w in flow_windows_trades.as_slice() {
            let (_, at) = self.trade_window(w);
            let (svol, ofi) = self.flow(site, at);
            put(&mut site, svol);
            put(&mut site, ofi);
        }
        for n in 0..flow_windows_ms.len() {
            let (_, at) = self.time_window(self.pointer(1, n));
            let (svol, ofi) = self.flow(site, at);
            put(&mut site, svol);
            put(&mut site, ofi);
        }
        for &w in volatility_windows_trades.as_slice() {
            let (_, at) = self.trade_window(w);
            let fixed = self.window_total(RET2, at);
            let bp2 = fixed as f32 * (1.0 / (1u64 << RET2_FRACTION_BITS) as f32);
            put(&mut site, libm::sqrtf(bp2));
        }
        for (n, &d) in intensity_windows_ms.as_slice().iter().enumerate() {
            let (lo, at) = self.time_window(self.pointer(2, n));
            let count = newest - lo + 1;
            let window_ms = d as f32;
            let rate = self.log1p_at(site, (count as f32 * 1000.0) / window_ms);
            put(&mut site, rate);
            let volume = self.window_total(SIZE, at);
            let vrate = self.log1p_at(site, (volume as f32 * 1000.0) / window_ms);
            put(&mut site, vrate);
        }
        let log_size = self.signed_log1p_at(site, i64::from(trade.size_lots));
        put(&mut site, log_size);
        let burst = self.signed_log1p_at(site, i64::try_from(self.burst_lots).unwrap_or(i64::MAX));
        put(&mut site, burst);
        let dt_prev = if dt_prev_ms == 0 {
            0.0
        } else {
            self.log1p_at(site, dt_prev_ms as f32 / 1000.0)
        };
        put(&mut site, dt_prev);
        let since_change_ms = t.saturating_sub(self.last_change_time);
        let dt_change = if since_change_ms == 0 {
            0.0
        } else {
            self.log1p_at(site, since_change_ms as f32 / 1000.0)
        };
        put(&mut site, dt_change);
        let since_change = self.signed_log1p_at(
            site,
            i64::try_from(newest - self.last_change).unwrap_or(i64::MAX),
        );
        put(&mut site, since_change);
        for &w in vwap_windows_trades.as_slice() {
            let (_, at) = self.trade_window(w);
            put(&mut site, self.vwap_dev(at));
        }
        for n in 0..vwap_windows_ms.len() {
            let (_, at) = self.time_window(self.pointer(3, n));
            put(&mut site, self.vwap_dev(at));
        }
        let mut offset = 0usize;
        for (window, &w) in range_windows_trades.as_slice().iter().enumerate() {
            let (high, low) = self.range_window(window, offset, w);
            offset += 2 * w as usize;
            let range = high - low;
            put(&mut site, range as f32);
            put(
                &mut site,
                if range > 0 {
                    ((p - low) - (high - p)) as f32 / range as f32
                } else {
                    0.0
                },
            );
        }
    }
}

mod market;

#[cfg(test)]
mod tests;
