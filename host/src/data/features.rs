//! Causal per-trade features.
//!
//! Row `i` of [`Features::values`] is computed from `trades[..=i]` only, so appending trades never changes
//! an earlier row. Every window is reset at a session break (a gap between consecutive trades longer than
//! [`FeatureConfig::session_gap_ms`]), so no feature reaches across a break.
//! Each feature's formula and units are documented in `docs/DATA.md`.
//!
//! All windows run in O(1) amortised time per trade: trade-count windows use prefix sums and monotonic
//! deques, time windows use two pointers that only move forward.

use std::collections::VecDeque;

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::csv::Trade;
use super::error::DataError;

/// Log returns are reported in basis points: `1e4 * ln(p_now / p_then)`.
const BASIS_POINTS: f64 = 1e4;

/// Which features to compute and over which windows.
///
/// Trade-count windows and lags are in trades, time windows and lags in milliseconds.
/// A window "over the last `w` trades" at trade `i` covers trades `i-w+1..=i`; a time window of `d` ms
/// covers the trades with `t_i - d < t <= t_i`. Both are clipped to the current session.
/// The default gives the 29 features listed in `docs/DATA.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeatureConfig {
    /// Lags `k` (trades) of the returns `ret_{k}t`.
    pub return_lags_trades: Vec<usize>,
    /// Lags `d` (ms) of the returns `ret_{d}` against the last trade at or before `t - d`.
    pub return_lags_ms: Vec<i64>,
    /// Windows (trades) of the signed volume `svol_{w}t` and the order-flow imbalance `ofi_{w}t`.
    pub flow_windows_trades: Vec<usize>,
    /// Windows (ms) of the signed volume `svol_{d}` and the order-flow imbalance `ofi_{d}`.
    pub flow_windows_ms: Vec<i64>,
    /// Windows (trades) of the realized volatility `rvol_{w}t`.
    pub volatility_windows_trades: Vec<usize>,
    /// Windows (ms) of the trade rate `rate_{d}` and the volume rate `vrate_{d}`.
    pub intensity_windows_ms: Vec<i64>,
    /// Windows (trades) of the distance from the VWAP, `vwap_dev_{w}t`.
    pub vwap_windows_trades: Vec<usize>,
    /// Windows (ms) of the distance from the VWAP, `vwap_dev_{d}`.
    pub vwap_windows_ms: Vec<i64>,
    /// Windows (trades) of the high-low range `range_{w}t` and the position in it `range_pos_{w}t`.
    pub range_windows_trades: Vec<usize>,
    /// Minimum price increment, used to express price distances in ticks (0.25 for ES).
    pub tick_size: f64,
    /// A gap between consecutive trades longer than this (ms) starts a new session and resets every window.
    pub session_gap_ms: i64,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        FeatureConfig {
            return_lags_trades: vec![1, 5, 20, 100],
            return_lags_ms: vec![1_000, 10_000, 60_000],
            flow_windows_trades: vec![20, 100],
            flow_windows_ms: vec![60_000],
            volatility_windows_trades: vec![20, 100],
            intensity_windows_ms: vec![10_000, 60_000],
            vwap_windows_trades: vec![100],
            vwap_windows_ms: vec![60_000],
            range_windows_trades: vec![100],
            tick_size: 0.25,
            session_gap_ms: 30 * 60 * 1000,
        }
    }
}

/// A window length in milliseconds as a name suffix: `1s`, `60s` or `250ms`.
fn duration_suffix(ms: i64) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

impl FeatureConfig {
    /// The feature names in column order, as [`compute_features`] produces them.
    pub fn feature_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        names.extend(self.return_lags_trades.iter().map(|k| format!("ret_{k}t")));
        names.extend(
            self.return_lags_ms
                .iter()
                .map(|&d| format!("ret_{}", duration_suffix(d))),
        );
        names.push("sign".to_owned());
        for w in &self.flow_windows_trades {
            names.push(format!("svol_{w}t"));
            names.push(format!("ofi_{w}t"));
        }
        for &d in &self.flow_windows_ms {
            names.push(format!("svol_{}", duration_suffix(d)));
            names.push(format!("ofi_{}", duration_suffix(d)));
        }
        names.extend(
            self.volatility_windows_trades
                .iter()
                .map(|w| format!("rvol_{w}t")),
        );
        for &d in &self.intensity_windows_ms {
            names.push(format!("rate_{}", duration_suffix(d)));
            names.push(format!("vrate_{}", duration_suffix(d)));
        }
        names.extend(
            [
                "log_size",
                "burst_size",
                "dt_prev_trade",
                "dt_last_change",
                "trades_since_change",
            ]
            .map(str::to_owned),
        );
        names.extend(
            self.vwap_windows_trades
                .iter()
                .map(|w| format!("vwap_dev_{w}t")),
        );
        names.extend(
            self.vwap_windows_ms
                .iter()
                .map(|&d| format!("vwap_dev_{}", duration_suffix(d))),
        );
        for w in &self.range_windows_trades {
            names.push(format!("range_{w}t"));
            names.push(format!("range_pos_{w}t"));
        }
        names
    }

    /// Number of features, `feature_names().len()`.
    pub fn feature_count(&self) -> usize {
        self.feature_names().len()
    }

    /// Warm-up of a session: a row is valid once its session holds at least this many earlier trades
    /// (the first member) and spans at least this many milliseconds (the second member).
    pub fn warm_up(&self) -> (usize, i64) {
        let trades = self
            .return_lags_trades
            .iter()
            .chain(&self.flow_windows_trades)
            .chain(&self.volatility_windows_trades)
            .chain(&self.vwap_windows_trades)
            .chain(&self.range_windows_trades)
            .copied()
            .max()
            .unwrap_or(0);
        let ms = self
            .return_lags_ms
            .iter()
            .chain(&self.flow_windows_ms)
            .chain(&self.intensity_windows_ms)
            .chain(&self.vwap_windows_ms)
            .copied()
            .max()
            .unwrap_or(0);
        (trades, ms.max(0))
    }

    /// Checks that every window is at least 1, the tick size is positive and finite,
    /// the session gap is positive and no two features share a name.
    ///
    /// [`compute_features`] does not call this: with an invalid configuration it still returns finite values,
    /// but they mean little. [`build_dataset`](super::build_dataset) does call it.
    ///
    /// # Errors
    ///
    /// [`DataError::FeatureSetting`] naming the first bad field, [`DataError::NoFeatures`] or
    /// [`DataError::DuplicateFeature`].
    pub fn validate(&self) -> Result<(), DataError> {
        let bad = |field, expected, found: &dyn std::fmt::Display| {
            Err(DataError::FeatureSetting {
                field,
                expected,
                found: found.to_string(),
            })
        };
        let trade_lists = [
            ("return_lags_trades", &self.return_lags_trades),
            ("flow_windows_trades", &self.flow_windows_trades),
            ("volatility_windows_trades", &self.volatility_windows_trades),
            ("vwap_windows_trades", &self.vwap_windows_trades),
            ("range_windows_trades", &self.range_windows_trades),
        ];
        for (name, list) in trade_lists {
            if list.contains(&0) {
                return bad(name, ">= 1 trade", &0);
            }
        }
        let ms_lists = [
            ("return_lags_ms", &self.return_lags_ms),
            ("flow_windows_ms", &self.flow_windows_ms),
            ("intensity_windows_ms", &self.intensity_windows_ms),
            ("vwap_windows_ms", &self.vwap_windows_ms),
        ];
        for (name, list) in ms_lists {
            if let Some(d) = list.iter().find(|&&d| d < 1) {
                return bad(name, ">= 1 ms", d);
            }
        }
        if !(self.tick_size.is_finite() && self.tick_size > 0.0) {
            return bad("tick_size", "finite and > 0", &self.tick_size);
        }
        if self.session_gap_ms < 1 {
            return bad("session_gap_ms", ">= 1", &self.session_gap_ms);
        }
        let mut names = self.feature_names();
        if names.is_empty() {
            return Err(DataError::NoFeatures);
        }
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|p| p[0] == p[1]) {
            return Err(DataError::DuplicateFeature(pair[0].clone()));
        }
        Ok(())
    }
}

/// The per-trade feature matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// `[n_trades, F]`: row `i` holds the features of trade `i`, every value finite.
    /// Rows still in a session's warm-up are present but flagged by [`Features::valid`].
    pub values: Array2<f32>,
    /// The `F` feature names in column order (see [`FeatureConfig::feature_names`]).
    pub names: Vec<String>,
    /// Index of the first valid row (`n_trades` when there is none): rows before it are the first warm-up.
    pub first_valid: usize,
    /// Per row: `true` when every window of the row is fully inside its session (see [`FeatureConfig::warm_up`]).
    /// After a session break the rows are invalid again until the new session has warmed up.
    pub valid: Vec<bool>,
    /// Row indices where a session starts, ascending; `[0, ...]` for non-empty input.
    pub session_starts: Vec<usize>,
}

impl Features {
    /// Number of feature columns, `F`.
    pub fn feature_count(&self) -> usize {
        self.names.len()
    }

    /// The index of the session start of each row: the largest entry of `session_starts` not above it.
    pub fn session_start_of(&self, row: usize) -> usize {
        let k = self.session_starts.partition_point(|&s| s <= row);
        k.checked_sub(1)
            .and_then(|k| self.session_starts.get(k))
            .copied()
            .unwrap_or(0)
    }
}

/// Converts to `f32` without letting a non-finite value through: NaN becomes 0, overflow saturates.
#[inline]
fn finite(x: f64) -> f32 {
    if x.is_nan() {
        0.0
    } else {
        (x as f32).clamp(-f32::MAX, f32::MAX)
    }
}

/// `sign(x) * ln(1 + |x|)`: a log scale that keeps the sign and is 0 at 0.
#[inline]
fn signed_log1p(x: f64) -> f64 {
    x.signum() * x.abs().ln_1p()
}

/// Milliseconds from `earlier` to `later` as non-negative seconds.
#[inline]
fn seconds_between(later: i64, earlier: i64) -> f64 {
    (later.saturating_sub(earlier) as f64 / 1000.0).max(0.0)
}

/// Per-trade series shared by several features.
struct Base {
    /// Session start index of each trade.
    session: Vec<usize>,
    /// Session start indices, ascending.
    session_starts: Vec<usize>,
    /// One-trade log return in basis points (0 for the first trade of a session).
    ret1_bp: Vec<f64>,
    /// Trade sign: the side when known, else the tick rule (0 before the session's first price change).
    sign: Vec<f64>,
    /// Index of the last trade at which the price changed (the session start if none yet).
    last_change: Vec<usize>,
    /// Prefix sums (length n + 1) of size, signed size, price * size and squared one-trade return.
    cum_size: Vec<f64>,
    cum_signed: Vec<f64>,
    cum_notional: Vec<f64>,
    cum_ret2: Vec<f64>,
}

impl Base {
    fn new(trades: &[Trade], session_gap_ms: i64) -> Base {
        let n = trades.len();
        let mut b = Base {
            session: Vec::with_capacity(n),
            session_starts: Vec::new(),
            ret1_bp: Vec::with_capacity(n),
            sign: Vec::with_capacity(n),
            last_change: Vec::with_capacity(n),
            cum_size: Vec::with_capacity(n + 1),
            cum_signed: Vec::with_capacity(n + 1),
            cum_notional: Vec::with_capacity(n + 1),
            cum_ret2: Vec::with_capacity(n + 1),
        };
        let (mut cs, mut csv, mut cn, mut cr) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        b.cum_size.push(cs);
        b.cum_signed.push(csv);
        b.cum_notional.push(cn);
        b.cum_ret2.push(cr);
        let mut start = 0usize;
        let mut tick = 0.0f64;
        let mut change = 0usize;
        for (i, tr) in trades.iter().enumerate() {
            let prev = i.checked_sub(1).and_then(|j| trades.get(j));
            let new_session = match prev {
                None => true,
                Some(p) => tr.timestamp_ms.saturating_sub(p.timestamp_ms) > session_gap_ms,
            };
            let ret = if new_session {
                start = i;
                tick = 0.0;
                change = i;
                b.session_starts.push(i);
                0.0
            } else {
                let p = prev.map_or(tr.price, |p| p.price);
                if tr.price > p {
                    tick = 1.0;
                } else if tr.price < p {
                    tick = -1.0;
                }
                if tr.price != p {
                    change = i;
                }
                BASIS_POINTS * (tr.price / p).ln()
            };
            let sign = tr.side.map_or(tick, |s| s.sign());
            b.session.push(start);
            b.ret1_bp.push(ret);
            b.sign.push(sign);
            b.last_change.push(change);
            cs += tr.size;
            csv += sign * tr.size;
            cn += tr.price * tr.size;
            cr += ret * ret;
            b.cum_size.push(cs);
            b.cum_signed.push(csv);
            b.cum_notional.push(cn);
            b.cum_ret2.push(cr);
        }
        b
    }

    /// First index of the window of the last `w` trades ending at `i`, clipped to the session.
    #[inline]
    fn trade_window_start(&self, i: usize, w: usize) -> usize {
        (i + 1).saturating_sub(w).max(self.session[i])
    }

    /// For each trade, the first index of its time window `(t_i - d, t_i]` within the session.
    fn time_window_starts(&self, trades: &[Trade], d: i64) -> Vec<usize> {
        let mut out = Vec::with_capacity(trades.len());
        let mut lo = 0usize;
        for (i, tr) in trades.iter().enumerate() {
            let s = self.session[i];
            if lo < s {
                lo = s;
            }
            let cutoff = tr.timestamp_ms.saturating_sub(d);
            while lo < i && trades[lo].timestamp_ms <= cutoff {
                lo += 1;
            }
            out.push(lo);
        }
        out
    }
}

#[inline]
fn window_sum(cum: &[f64], lo: usize, i: usize) -> f64 {
    cum[i + 1] - cum[lo]
}

/// Computes the causal features of every trade.
///
/// Trades are expected in time order, as [`parse_trades`](super::parse_trades) guarantees;
/// out-of-order input still yields finite values. Every value is finite whatever the input:
/// a NaN (impossible for parsed trades) becomes 0 and an `f32` overflow saturates.
/// Runs in O(n * F).
pub fn compute_features(trades: &[Trade], cfg: &FeatureConfig) -> Features {
    let n = trades.len();
    let names = cfg.feature_names();
    let mut values = Array2::<f32>::zeros((n, names.len()));
    let base = Base::new(trades, cfg.session_gap_ms);
    let price = |i: usize| trades[i].price;
    let tick = cfg.tick_size;
    let mut col = 0usize;
    // Each feature fills one column; `put` keeps the column bookkeeping in one place.
    let mut put = |col: &mut usize, f: &mut dyn FnMut(usize) -> f64| {
        let mut c = values.column_mut(*col);
        for (i, v) in c.iter_mut().enumerate() {
            *v = finite(f(i));
        }
        *col += 1;
    };

    for &k in &cfg.return_lags_trades {
        put(&mut col, &mut |i| {
            let j = i.saturating_sub(k).max(base.session[i]);
            BASIS_POINTS * (price(i) / price(j)).ln()
        });
    }
    for &d in &cfg.return_lags_ms {
        let lo = base.time_window_starts(trades, d);
        put(&mut col, &mut |i| {
            // The last trade at or before t - d is the one just before the window, if it is in the session.
            let j = lo[i].saturating_sub(1).max(base.session[i]);
            BASIS_POINTS * (price(i) / price(j)).ln()
        });
    }
    put(&mut col, &mut |i| base.sign[i]);
    let flow = |lo: usize, i: usize| {
        let signed = window_sum(&base.cum_signed, lo, i);
        let total = window_sum(&base.cum_size, lo, i);
        let ofi = if total > 0.0 {
            (signed / total).clamp(-1.0, 1.0)
        } else {
            0.0
        };
        (signed_log1p(signed), ofi)
    };
    for &w in &cfg.flow_windows_trades {
        put(&mut col, &mut |i| flow(base.trade_window_start(i, w), i).0);
        put(&mut col, &mut |i| flow(base.trade_window_start(i, w), i).1);
    }
    for &d in &cfg.flow_windows_ms {
        let lo = base.time_window_starts(trades, d);
        put(&mut col, &mut |i| flow(lo[i], i).0);
        put(&mut col, &mut |i| flow(lo[i], i).1);
    }
    for &w in &cfg.volatility_windows_trades {
        put(&mut col, &mut |i| {
            let lo = base.trade_window_start(i, w);
            window_sum(&base.cum_ret2, lo, i).max(0.0).sqrt()
        });
    }
    for &d in &cfg.intensity_windows_ms {
        let lo = base.time_window_starts(trades, d);
        let seconds = d as f64 / 1000.0;
        let per_second = |x: f64| if seconds > 0.0 { x / seconds } else { 0.0 };
        put(&mut col, &mut |i| {
            per_second((i + 1 - lo[i]) as f64).ln_1p()
        });
        put(&mut col, &mut |i| {
            per_second(window_sum(&base.cum_size, lo[i], i).max(0.0)).ln_1p()
        });
    }
    put(&mut col, &mut |i| trades[i].size.ln_1p());
    let mut burst = 0.0f64;
    put(&mut col, &mut |i| {
        let same_burst =
            i > base.session[i] && trades[i].timestamp_ms == trades[i - 1].timestamp_ms;
        burst = if same_burst { burst } else { 0.0 } + trades[i].size;
        burst.ln_1p()
    });
    put(&mut col, &mut |i| {
        if i > base.session[i] {
            seconds_between(trades[i].timestamp_ms, trades[i - 1].timestamp_ms).ln_1p()
        } else {
            0.0
        }
    });
    put(&mut col, &mut |i| {
        seconds_between(
            trades[i].timestamp_ms,
            trades[base.last_change[i]].timestamp_ms,
        )
        .ln_1p()
    });
    put(&mut col, &mut |i| {
        ((i - base.last_change[i]) as f64).ln_1p()
    });
    let vwap_dev = |lo: usize, i: usize| {
        let size = window_sum(&base.cum_size, lo, i);
        if size > 0.0 {
            (price(i) - window_sum(&base.cum_notional, lo, i) / size) / tick
        } else {
            0.0
        }
    };
    for &w in &cfg.vwap_windows_trades {
        put(&mut col, &mut |i| {
            vwap_dev(base.trade_window_start(i, w), i)
        });
    }
    for &d in &cfg.vwap_windows_ms {
        let lo = base.time_window_starts(trades, d);
        put(&mut col, &mut |i| vwap_dev(lo[i], i));
    }
    for &w in &cfg.range_windows_trades {
        let (high, low) = rolling_high_low(trades, &base, w);
        put(&mut col, &mut |i| (high[i] - low[i]) / tick);
        put(&mut col, &mut |i| {
            let range = high[i] - low[i];
            if range > 0.0 {
                (2.0 * (price(i) - low[i]) / range - 1.0).clamp(-1.0, 1.0)
            } else {
                0.0
            }
        });
    }
    debug_assert_eq!(col, names.len());

    let (warm_trades, warm_ms) = cfg.warm_up();
    let valid: Vec<bool> = (0..n)
        .map(|i| {
            let s = base.session[i];
            i - s >= warm_trades
                && trades[i]
                    .timestamp_ms
                    .saturating_sub(trades[s].timestamp_ms)
                    >= warm_ms
        })
        .collect();
    let first_valid = valid.iter().position(|&v| v).unwrap_or(n);
    Features {
        values,
        names,
        first_valid,
        valid,
        session_starts: base.session_starts,
    }
}

/// Rolling maximum and minimum price over the last `w` trades of the session (monotonic deques).
fn rolling_high_low(trades: &[Trade], base: &Base, w: usize) -> (Vec<f64>, Vec<f64>) {
    let n = trades.len();
    let mut high = Vec::with_capacity(n);
    let mut low = Vec::with_capacity(n);
    let mut maxq: VecDeque<usize> = VecDeque::new();
    let mut minq: VecDeque<usize> = VecDeque::new();
    for (i, tr) in trades.iter().enumerate() {
        if base.session[i] == i {
            maxq.clear();
            minq.clear();
        }
        let p = tr.price;
        while maxq.back().is_some_and(|&j| trades[j].price <= p) {
            maxq.pop_back();
        }
        maxq.push_back(i);
        while minq.back().is_some_and(|&j| trades[j].price >= p) {
            minq.pop_back();
        }
        minq.push_back(i);
        let lo = base.trade_window_start(i, w.max(1));
        while maxq.front().is_some_and(|&j| j < lo) {
            maxq.pop_front();
        }
        while minq.front().is_some_and(|&j| j < lo) {
            minq.pop_front();
        }
        high.push(maxq.front().map_or(p, |&j| trades[j].price));
        low.push(minq.front().map_or(p, |&j| trades[j].price));
    }
    (high, low)
}

#[cfg(test)]
mod tests;
