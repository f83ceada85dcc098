//! The bar and book features of the engine: [`FeatureEngine::push_bar`], [`FeatureEngine::push_book`] and the
//! trades of a book spec.
//!
//! # State
//!
//! The caller's state holds, for a bars spec, a ring of `capacity` rows of [`MARKET_WORDS_PER_EVENT`] words: the
//! bar's close and the session's running volume before it; for a book spec the same rows for the snapshots (the
//! mid in half ticks, `bid + ask`, and the running order-flow imbalance before it), then a ring of `capacity`
//! words for the trades (the running trade sign before each). A window over the last `w` bars, snapshots or
//! trades is the running total now minus the row at its oldest member, clipped to the session and the ring, as
//! for trades. Everything else is a few scalars in [`MarketState`].
//!
//! # Arithmetic
//!
//! Integers up to the last step, then one or two correctly rounded `f32` operations, the engine's `ln_1p` (the
//! log returns and `bofi`) and the time-of-day sine and cosine of [`time_of_day_sin_cos`] (plain `f64` `+ *`):
//! the same bits on every target (`docs/ARITHMETIC.md`).

use super::{BASIS_POINTS, FeatureEngine, TradeError};
use crate::features::market::{
    Bar, BookLevel, BookLevels, InputKind, MarketError, check_bar, check_book, time_of_day_sin_cos,
};
use crate::features::spec::MARKET_WORDS_PER_EVENT;
use crate::features::{Side, Trade};

/// The words of a ring row, in order.
const LEVEL: usize = 0;
const TOTAL: usize = 1;

/// The per-session scalars of a bars or book engine.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct MarketState {
    /// Bars or snapshots pushed since the reset: the absolute index of the next.
    events: u64,
    /// The absolute index of the current session's first bar or snapshot (`events` while the session has none).
    session_start: u64,
    /// Ring slot of the newest bar or snapshot.
    slot: usize,
    /// The time of the newest input of any kind (a book's trades included), `None` before the first.
    last_time: Option<i64>,
    /// The newest bar's close, or the newest snapshot's best level.
    prev_close: i64,
    prev_best: BookLevel,
    /// The running volume (bars) or order-flow imbalance (book) of the session, the newest included.
    total: i64,
    /// The largest size the best bid and ask queues have had since their price was set.
    bid_peak: u32,
    ask_peak: u32,
    /// Trades pushed since the reset (book specs), the first of their session, the newest's ring slot.
    trades: u64,
    trade_session_start: u64,
    trade_slot: usize,
    /// The running trade sign of the session, the newest included.
    total_sign: i64,
    /// The tick rule of the session's trades: the last trade price and the sign of the last change.
    last_trade_price: i64,
    trade_tick_sign: i64,
}

impl FeatureEngine<'_> {
    /// Bars or snapshots in the current session, the newest included (0 before the first, and after a book's
    /// trade opened a session no snapshot has reached yet).
    pub fn session_events(&self) -> u64 {
        self.market.events - self.market.session_start
    }

    /// Pushes one bar of a bars spec and writes its features to `out[..feature_count]`, in the order of
    /// [`FeatureSpec::for_each_feature`](crate::features::FeatureSpec::for_each_feature).
    ///
    /// Returns whether the row is *valid*: its session holds at least `warm_up().0` earlier bars. A gap between
    /// bars longer than the spec's session gap starts a session.
    ///
    /// # Errors
    ///
    /// [`MarketError`] for a spec of another kind, a short `out`, prices out of order or a time before the
    /// previous bar's; the state is then unchanged and `out` untouched.
    pub fn push_bar(&mut self, bar: &Bar, out: &mut [f32]) -> Result<bool, MarketError> {
        self.expect(InputKind::Bars, out.len())?;
        check_bar(bar)?;
        let new_session = self.market_session(bar.time_ms)?;
        let m = &mut self.market;
        let i = m.events;
        if new_session {
            m.session_start = i;
            m.total = 0;
        }
        let first = i == m.session_start;
        let prev_close = if first { bar.close_ticks } else { m.prev_close };
        let slot = self.advance_slot(i);
        let volume = i64::from(bar.volume_lots);
        let total_before = self.market.total;
        self.put_row(slot, [bar.close_ticks, total_before]);
        let m = &mut self.market;
        m.total = total_before.wrapping_add(volume);
        m.events = i + 1;
        m.slot = slot;
        m.last_time = Some(bar.time_ms);
        m.prev_close = bar.close_ticks;

        let input = self.spec.input;
        let floor = self.market_floor();
        let close = bar.close_ticks;
        let mut site = 0usize;
        let mut values = [0f32; 2 * crate::features::MAX_WINDOWS + 5];
        let mut put = |site: &mut usize, v: f32| {
            if let Some(o) = values.get_mut(*site) {
                *o = v;
            }
            *site += 1;
        };
        for &k in input.bar_return_lags.as_slice() {
            let lo = i.saturating_sub(u64::from(k)).max(floor);
            let then = self.row_at(LEVEL, self.market_slot_back(i - lo));
            let value = self.return_at(site, close, then);
            put(&mut site, value);
        }
        let bp = |num: i64| BASIS_POINTS * (num as f32 / close as f32);
        put(&mut site, bp(bar.high_ticks - bar.low_ticks));
        put(&mut site, bp(bar.close_ticks - bar.open_ticks));
        let high = bar.high_ticks.max(prev_close);
        let low = bar.low_ticks.min(prev_close);
        put(&mut site, bp(high - low));
        for &w in input.bar_volume_windows.as_slice() {
            let lo = (i + 1).saturating_sub(u64::from(w)).max(floor);
            let count = i - lo + 1;
            let sum = self
                .market
                .total
                .wrapping_sub(self.row_at(TOTAL, self.market_slot_back(i - lo)));
            let value = if sum > 0 {
                (volume * count as i64) as f32 / sum as f32
            } else {
                0.0
            };
            put(&mut site, value);
        }
        let (sin, cos) = time_of_day_sin_cos(bar.time_ms);
        put(&mut site, sin);
        put(&mut site, cos);
        self.copy_out(&values, site, out);
        Ok(i - self.market.session_start >= self.warm_trades)
    }

    /// Pushes one snapshot of a book spec and writes its features to `out[..feature_count]`, in the order of
    /// [`FeatureSpec::for_each_feature`](crate::features::FeatureSpec::for_each_feature); trades go to
    /// [`push`](FeatureEngine::push) in between.
    ///
    /// Returns whether the row is *valid*: its session holds at least `warm_up().0` earlier snapshots. A gap
    /// between consecutive events (snapshots or trades) longer than the spec's session gap starts a session.
    ///
    /// # Errors
    ///
    /// [`MarketError`] for a spec of another kind, a short `out`, a crossed or locked level, levels out of order
    /// or a time before the previous event's; the state is then unchanged and `out` untouched.
    pub fn push_book(&mut self, book: &BookLevels, out: &mut [f32]) -> Result<bool, MarketError> {
        self.expect(InputKind::Book, out.len())?;
        check_book(book)?;
        let new_session = self.market_session(book.time_ms)?;
        if new_session {
            self.start_book_session();
        }
        let m = self.market;
        let i = m.events;
        let first = i == m.session_start;
        let best = book.best();
        let (b, qb, a, qa) = (
            best.bid_ticks,
            i64::from(best.bid_lots),
            best.ask_ticks,
            i64::from(best.ask_lots),
        );
        // Cont, Kukanov and Stoikov (2014), on the best level.
        let ofi = if first {
            0
        } else {
            let p = m.prev_best;
            let (pqb, pqa) = (i64::from(p.bid_lots), i64::from(p.ask_lots));
            let mut e = 0i64;
            if b >= p.bid_ticks {
                e += qb;
            }
            if b <= p.bid_ticks {
                e -= pqb;
            }
            if a <= p.ask_ticks {
                e -= qa;
            }
            if a >= p.ask_ticks {
                e += pqa;
            }
            e
        };
        let peak = |same: bool, peak: u32, now: u32| if same { peak.max(now) } else { now };
        let bid_peak = peak(
            !first && b == m.prev_best.bid_ticks,
            m.bid_peak,
            best.bid_lots,
        );
        let ask_peak = peak(
            !first && a == m.prev_best.ask_ticks,
            m.ask_peak,
            best.ask_lots,
        );
        let slot = self.advance_slot(i);
        let mid2 = b + a;
        self.put_row(slot, [mid2, m.total]);
        let m = &mut self.market;
        m.total = m.total.wrapping_add(ofi);
        m.events = i + 1;
        m.slot = slot;
        m.last_time = Some(book.time_ms);
        m.prev_best = best;
        m.bid_peak = bid_peak;
        m.ask_peak = ask_peak;

        let input = self.spec.input;
        let floor = self.market_floor();
        let mut site = 0usize;
        let mut values = [0f32; 4 * crate::features::MAX_WINDOWS + 4];
        let mut put = |site: &mut usize, v: f32| {
            if let Some(o) = values.get_mut(*site) {
                *o = v;
            }
            *site += 1;
        };
        let spread = a - b;
        put(&mut site, spread as f32);
        for &k in input.book_return_lags.as_slice() {
            let lo = i.saturating_sub(u64::from(k)).max(floor);
            let then = self.row_at(LEVEL, self.market_slot_back(i - lo));
            let value = self.return_at(site, mid2, then);
            put(&mut site, value);
        }
        // micro - mid = (a - b) / 2 * (qb - qa) / (qb + qa), in ticks.
        let micro = if qb + qa > 0 {
            (i128::from(spread) * i128::from(qb - qa)) as f32 / (2 * (qb + qa)) as f32
        } else {
            0.0
        };
        put(&mut site, micro);
        for &n in input.book_depth_levels.as_slice() {
            let (mut bids, mut asks) = (0i64, 0i64);
            for level in book.levels().iter().take(n as usize) {
                bids += i64::from(level.bid_lots);
                asks += i64::from(level.ask_lots);
            }
            let value = if bids + asks > 0 {
                (bids - asks) as f32 / (bids + asks) as f32
            } else {
                0.0
            };
            put(&mut site, value);
        }
        for &w in input.book_ofi_windows.as_slice() {
            let lo = (i + 1).saturating_sub(u64::from(w)).max(floor);
            let sum = self
                .market
                .total
                .wrapping_sub(self.row_at(TOTAL, self.market_slot_back(i - lo)));
            let value = self.signed_log1p_at(site, sum);
            put(&mut site, value);
        }
        for &w in input.book_trade_windows.as_slice() {
            put(&mut site, self.trade_sign_imbalance(w));
        }
        let depletion = |peak: u32, now: u32| {
            if peak > 0 {
                (peak - now.min(peak)) as f32 / peak as f32
            } else {
                0.0
            }
        };
        put(&mut site, depletion(bid_peak, best.bid_lots));
        put(&mut site, depletion(ask_peak, best.ask_lots));
        self.copy_out(&values, site, out);
        Ok(i - self.market.session_start >= self.warm_trades)
    }

    /// A trade pushed to a bars or book engine: refused by a bars spec, added to the trade-sign windows of a
    /// book spec (the result is then `false` and nothing is written).
    pub(super) fn push_market_trade(&mut self, trade: &Trade) -> Result<bool, TradeError> {
        let input = self.spec.input.kind;
        if input != InputKind::Book {
            return Err(TradeError::WrongInput { input });
        }
        if trade.price_ticks < 1 {
            return Err(TradeError::Price {
                found: trade.price_ticks,
            });
        }
        let new_session = self.market_session(trade.time_ms).map_err(|e| match e {
            MarketError::TimeBackwards { previous, found } => {
                TradeError::TimeBackwards { previous, found }
            }
            _ => TradeError::WrongInput { input },
        })?;
        if new_session {
            self.start_book_session();
        }
        let cap = self.ring_len_market();
        let m = &mut self.market;
        let first = m.trades == m.trade_session_start;
        if !first {
            let change = trade.price_ticks - m.last_trade_price;
            if change != 0 {
                m.trade_tick_sign = change.signum();
            }
        }
        let sign = match trade.side {
            Side::Buy => 1,
            Side::Sell => -1,
            Side::Unknown => m.trade_tick_sign,
        };
        let slot = if m.trades == 0 || m.trade_slot + 1 >= cap {
            0
        } else {
            m.trade_slot + 1
        };
        let at = cap * MARKET_WORDS_PER_EVENT + slot;
        let before = m.total_sign;
        if let Some(word) = self.market_ring.get_mut(at) {
            *word = before;
        }
        let m = &mut self.market;
        m.total_sign = before.wrapping_add(sign);
        m.trade_slot = slot;
        m.trades += 1;
        m.last_trade_price = trade.price_ticks;
        m.last_time = Some(trade.time_ms);
        Ok(false)
    }

    /// The mean sign of the last `w` trades of the session (clipped to the ring), 0 when there is none.
    fn trade_sign_imbalance(&self, w: u32) -> f32 {
        let m = &self.market;
        let cap = self.ring_len_market() as u64;
        let floor = m.trade_session_start.max(m.trades.saturating_sub(cap));
        let lo = m.trades.saturating_sub(u64::from(w)).max(floor);
        let count = m.trades - lo;
        if count == 0 {
            return 0.0;
        }
        let back = usize::try_from(m.trades - 1 - lo).unwrap_or(0);
        let cap = self.ring_len_market();
        let slot = if back <= m.trade_slot {
            m.trade_slot - back
        } else {
            m.trade_slot + cap - back
        };
        let before = self
            .market_ring
            .get(cap * MARKET_WORDS_PER_EVENT + slot)
            .copied()
            .unwrap_or(0);
        m.total_sign.wrapping_sub(before) as f32 / count as f32
    }

    /// Starts a book session at the next snapshot and the next trade: every window empties.
    fn start_book_session(&mut self) {
        let m = &mut self.market;
        m.session_start = m.events;
        m.total = 0;
        m.trade_session_start = m.trades;
        m.total_sign = 0;
        m.trade_tick_sign = 0;
    }

    /// Refuses a spec of another kind than `kind` and an output shorter than the feature count.
    fn expect(&self, kind: InputKind, given: usize) -> Result<(), MarketError> {
        if self.spec.input.kind != kind {
            return Err(MarketError::WrongInput {
                expected: self.spec.input.kind,
                found: kind,
            });
        }
        if given < self.feature_count {
            return Err(MarketError::OutputTooShort {
                needed: self.feature_count,
                given,
            });
        }
        Ok(())
    }

    /// Whether an input at `time_ms` starts a session (the first input, or a gap above the session gap).
    fn market_session(&self, time_ms: i64) -> Result<bool, MarketError> {
        match self.market.last_time {
            None => Ok(true),
            Some(previous) if time_ms < previous => Err(MarketError::TimeBackwards {
                previous,
                found: time_ms,
            }),
            Some(previous) => Ok(time_ms.abs_diff(previous) > u64::from(self.spec.session_gap_ms)),
        }
    }

    /// Rows of the bar or snapshot ring: the capacity.
    #[inline]
    fn ring_len_market(&self) -> usize {
        self.ring_len
    }

    /// The ring slot of bar or snapshot `i` (the next one).
    fn advance_slot(&self, i: u64) -> usize {
        let m = &self.market;
        if i == 0 || m.slot + 1 >= self.ring_len_market() {
            0
        } else {
            m.slot + 1
        }
    }

    fn put_row(&mut self, slot: usize, row: [i64; MARKET_WORDS_PER_EVENT]) {
        let start = slot * MARKET_WORDS_PER_EVENT;
        if let Some(words) = self
            .market_ring
            .get_mut(start..start + MARKET_WORDS_PER_EVENT)
        {
            words.copy_from_slice(&row);
        }
    }

    #[inline]
    fn row_at(&self, column: usize, slot: usize) -> i64 {
        self.market_ring
            .get(slot * MARKET_WORDS_PER_EVENT + column)
            .copied()
            .unwrap_or(0)
    }

    /// The ring slot of the bar or snapshot `back` before the newest (`back < capacity`).
    #[inline]
    fn market_slot_back(&self, back: u64) -> usize {
        let back = usize::try_from(back).unwrap_or(0);
        let slot = self.market.slot;
        if back <= slot {
            slot - back
        } else {
            slot + self.ring_len_market() - back
        }
    }

    /// The oldest bar or snapshot a window of the newest may reach: the session's first, or the oldest the
    /// ring still holds.
    #[inline]
    fn market_floor(&self) -> u64 {
        let m = &self.market;
        m.session_start
            .max(m.events.saturating_sub(self.ring_len_market() as u64))
    }

    /// Copies the `count` values computed to `out`.
    fn copy_out(&self, values: &[f32], count: usize, out: &mut [f32]) {
        if let (Some(dst), Some(src)) = (out.get_mut(..count), values.get(..count)) {
            dst.copy_from_slice(src);
        }
    }
}

#[cfg(test)]
mod tests;
