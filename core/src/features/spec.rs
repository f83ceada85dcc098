//! The feature specification: which causal features a model reads, over which windows, and the integer units
//! of the trades it is fed.
//!
//! A [`FeatureSpec`] is plain `Copy` data with fixed-size lists, so firmware can hold one without an allocator
//! and a blob can carry one (see `docs/BLOB.md`). [`FeatureSpec::validate`] is the one check of every field; the
//! loader and the host both call it.

use core::fmt;

use super::market::{InputKind, InputSpec, MAX_BOOK_LEVELS};

/// The most windows (or lags) one list of a [`FeatureSpec`] may hold.
pub const MAX_WINDOWS: usize = 8;

/// The largest trade capacity (trades kept for the windows) a [`FeatureSpec`] may declare.
pub const MAX_CAPACITY: u32 = 1 << 20;

/// The longest time window or lag, in milliseconds (one week).
pub const MAX_WINDOW_MS: u32 = 7 * 24 * 3_600_000;

/// Up to [`MAX_WINDOWS`] window lengths (trades or milliseconds), in the order their features appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WindowList {
    len: u8,
    items: [u32; MAX_WINDOWS],
}

impl WindowList {
    /// The empty list.
    pub const EMPTY: WindowList = WindowList {
        len: 0,
        items: [0; MAX_WINDOWS],
    };

    /// A list of `items`, or `None` when there are more than [`MAX_WINDOWS`].
    pub fn new(items: &[u32]) -> Option<WindowList> {
        if items.len() > MAX_WINDOWS {
            return None;
        }
        let mut list = WindowList::EMPTY;
        for (slot, &item) in list.items.iter_mut().zip(items) {
            *slot = item;
        }
        list.len = items.len() as u8;
        Some(list)
    }

    /// The windows, in order.
    #[inline]
    pub fn as_slice(&self) -> &[u32] {
        self.items.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// The number of windows.
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the list is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The largest window, 0 for an empty list.
    #[inline]
    pub fn max(&self) -> u32 {
        self.as_slice().iter().copied().max().unwrap_or(0)
    }
}

impl Default for WindowList {
    fn default() -> Self {
        WindowList::EMPTY
    }
}

/// Which features to compute, over which windows, and the units of the trades.
///
/// Trade-count windows and lags are in trades, time windows and lags in milliseconds. A window "over the last `w`
/// trades" at the newest trade covers it and the `w - 1` trades before it; a time window of `d` ms covers the
/// trades at most `d` ms old (`t_now - d < t <= t_now`). Every window is clipped to the current session and to the
/// last [`capacity`](FeatureSpec::capacity) trades. The features come out in the order of `docs/DATA.md`: the
/// lists below in declaration order, with `sign` after the return lags and the five per-trade features after the
/// intensity windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeatureSpec {
    /// Lags `k` (trades) of the returns `ret_{k}t`.
    pub return_lags_trades: WindowList,
    /// Lags `d` (ms) of the returns `ret_{d}` against the last trade at or before `t - d`.
    pub return_lags_ms: WindowList,
    /// Windows (trades) of the signed volume `svol_{w}t` and the order-flow imbalance `ofi_{w}t`.
    pub flow_windows_trades: WindowList,
    /// Windows (ms) of the signed volume `svol_{d}` and the order-flow imbalance `ofi_{d}`.
    pub flow_windows_ms: WindowList,
    /// Windows (trades) of the realized volatility `rvol_{w}t`.
    pub volatility_windows_trades: WindowList,
    /// Windows (ms) of the trade rate `rate_{d}` and the volume rate `vrate_{d}`.
    pub intensity_windows_ms: WindowList,
    /// Windows (trades) of the distance from the VWAP, `vwap_dev_{w}t`.
    pub vwap_windows_trades: WindowList,
    /// Windows (ms) of the distance from the VWAP, `vwap_dev_{d}`.
    pub vwap_windows_ms: WindowList,
    /// Windows (trades) of the high-low range `range_{w}t` and the position in it `range_pos_{w}t`.
    pub range_windows_trades: WindowList,
    /// A gap between consecutive trades longer than this (ms) starts a new session and resets every window.
    pub session_gap_ms: u32,
    /// The most trades the engine keeps: every trade window must fit in it, and a time window holding more
    /// trades than this is clipped to the newest `capacity` (the host and the device clip the same way).
    pub capacity: u32,
    /// The price of one tick in the instrument's price units (0.25 for ES): prices reach the engine as integer
    /// ticks, `price / tick_size`.
    pub tick_size: f64,
    /// The size of one lot in the instrument's size units (1 for contracts): sizes reach the engine as integer
    /// lots, `size / size_unit`.
    pub size_unit: f64,
    /// What the engine is fed (trades, bars or book snapshots) and the bar and book window lists. With
    /// [`InputKind::Bars`] or [`InputKind::Book`] every trade list above is empty, the session gap is that
    /// kind's (between bars, or between book events), and the capacity is the bars, or the snapshots and the
    /// trades, kept.
    pub input: InputSpec,
}

/// A field of a [`FeatureSpec`], as named in error messages, the blob documentation and the host's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpecField {
    /// [`FeatureSpec::return_lags_trades`].
    ReturnLagsTrades,
    /// [`FeatureSpec::return_lags_ms`].
    ReturnLagsMs,
    /// [`FeatureSpec::flow_windows_trades`].
    FlowWindowsTrades,
    /// [`FeatureSpec::flow_windows_ms`].
    FlowWindowsMs,
    /// [`FeatureSpec::volatility_windows_trades`].
    VolatilityWindowsTrades,
    /// [`FeatureSpec::intensity_windows_ms`].
    IntensityWindowsMs,
    /// [`FeatureSpec::vwap_windows_trades`].
    VwapWindowsTrades,
    /// [`FeatureSpec::vwap_windows_ms`].
    VwapWindowsMs,
    /// [`FeatureSpec::range_windows_trades`].
    RangeWindowsTrades,
    /// [`FeatureSpec::session_gap_ms`].
    SessionGapMs,
    /// [`FeatureSpec::capacity`].
    Capacity,
    /// [`FeatureSpec::tick_size`].
    TickSize,
    /// [`FeatureSpec::size_unit`].
    SizeUnit,
    /// [`InputSpec::bar_return_lags`].
    BarReturnLags,
    /// [`InputSpec::bar_volume_windows`].
    BarVolumeWindows,
    /// [`InputSpec::book_return_lags`].
    BookReturnLags,
    /// [`InputSpec::book_depth_levels`].
    BookDepthLevels,
    /// [`InputSpec::book_ofi_windows`].
    BookOfiWindows,
    /// [`InputSpec::book_trade_windows`].
    BookTradeWindows,
}

impl SpecField {
    /// The field's name, as in the host's `[data.features]` config.
    pub fn name(self) -> &'static str {
        match self {
            SpecField::ReturnLagsTrades => "return_lags_trades",
            SpecField::ReturnLagsMs => "return_lags_ms",
            SpecField::FlowWindowsTrades => "flow_windows_trades",
            SpecField::FlowWindowsMs => "flow_windows_ms",
            SpecField::VolatilityWindowsTrades => "volatility_windows_trades",
            SpecField::IntensityWindowsMs => "intensity_windows_ms",
            SpecField::VwapWindowsTrades => "vwap_windows_trades",
            SpecField::VwapWindowsMs => "vwap_windows_ms",
            SpecField::RangeWindowsTrades => "range_windows_trades",
            SpecField::SessionGapMs => "session_gap_ms",
            SpecField::Capacity => "capacity",
            SpecField::TickSize => "tick_size",
            SpecField::SizeUnit => "size_unit",
            SpecField::BarReturnLags => "bar_return_lags",
            SpecField::BarVolumeWindows => "bar_volume_windows",
            SpecField::BookReturnLags => "book_return_lags",
            SpecField::BookDepthLevels => "book_depth_levels",
            SpecField::BookOfiWindows => "book_ofi_windows",
            SpecField::BookTradeWindows => "book_trade_windows",
        }
    }
}

impl fmt::Display for SpecField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a [`FeatureSpec`] was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SpecError {
    /// A trade window or lag is 0 or above the capacity.
    TradeWindow {
        /// The list holding it.
        field: SpecField,
        /// The window found.
        found: u32,
        /// The spec's capacity.
        capacity: u32,
    },
    /// A time window or lag is 0 or above [`MAX_WINDOW_MS`].
    TimeWindow {
        /// The list holding it.
        field: SpecField,
        /// The window found (ms).
        found: u32,
    },
    /// The session gap is 0.
    SessionGap,
    /// The capacity is below 2 or above [`MAX_CAPACITY`].
    Capacity {
        /// The capacity found.
        found: u32,
    },
    /// The tick size or the size unit is not finite and positive.
    Unit {
        /// [`SpecField::TickSize`] or [`SpecField::SizeUnit`].
        field: SpecField,
        /// The value found.
        found: f64,
    },
    /// Every list is empty and there are no per-trade features either (never raised: the five per-trade
    /// features are always present; kept so that a future spec that can switch them off has its error).
    NoFeatures,
    /// A list holds windows although the spec's input kind has no features over it (a trade list in a bars
    /// spec, a book list in a trades spec, ...).
    WrongInput {
        /// The list.
        field: SpecField,
        /// The spec's input kind.
        input: InputKind,
    },
    /// A bar or book window or lag is 0 or above its limit: the capacity (bars, snapshots or trades kept; a
    /// lag reads `k + 1` of them, so at most `capacity - 1`), or [`MAX_BOOK_LEVELS`] for a depth.
    CountWindow {
        /// The list holding it.
        field: SpecField,
        /// The window found.
        found: u32,
        /// The largest allowed.
        limit: u32,
    },
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SpecError::TradeWindow {
                field,
                found,
                capacity,
            } => write!(
                f,
                "feature spec field `{field}`: window {found} is out of range: expected 1 to the capacity {capacity} trades"
            ),
            SpecError::TimeWindow { field, found } => write!(
                f,
                "feature spec field `{field}`: window {found} ms is out of range: expected 1 to {MAX_WINDOW_MS} ms"
            ),
            SpecError::SessionGap => {
                f.write_str("feature spec field `session_gap_ms`: expected at least 1 ms")
            }
            SpecError::Capacity { found } => write!(
                f,
                "feature spec field `capacity`: {found} trades is out of range: expected 2 to {MAX_CAPACITY}"
            ),
            SpecError::Unit { field, found } => {
                write!(
                    f,
                    "feature spec field `{field}`: {found} is not finite and above zero"
                )
            }
            SpecError::NoFeatures => f.write_str("the feature spec names no feature"),
            SpecError::WrongInput { field, input } => write!(
                f,
                "feature spec field `{field}`: a {input} spec has no features over it: expected an empty list"
            ),
            SpecError::CountWindow {
                field,
                found,
                limit,
            } => write!(
                f,
                "feature spec field `{field}`: window {found} is out of range: expected 1 to {limit}"
            ),
        }
    }
}

impl core::error::Error for SpecError {}

impl FeatureSpec {
    /// The trade-count lists with their fields, in feature order.
    pub fn trade_lists(&self) -> [(SpecField, &WindowList); 5] {
        [
            (SpecField::ReturnLagsTrades, &self.return_lags_trades),
            (SpecField::FlowWindowsTrades, &self.flow_windows_trades),
            (
                SpecField::VolatilityWindowsTrades,
                &self.volatility_windows_trades,
            ),
            (SpecField::VwapWindowsTrades, &self.vwap_windows_trades),
            (SpecField::RangeWindowsTrades, &self.range_windows_trades),
        ]
    }

    /// The time lists with their fields, in feature order.
    pub fn time_lists(&self) -> [(SpecField, &WindowList); 4] {
        [
            (SpecField::ReturnLagsMs, &self.return_lags_ms),
            (SpecField::FlowWindowsMs, &self.flow_windows_ms),
            (SpecField::IntensityWindowsMs, &self.intensity_windows_ms),
            (SpecField::VwapWindowsMs, &self.vwap_windows_ms),
        ]
    }

    /// Checks every field: trade windows in `1..=capacity` (a return lag `k` needs `k + 1` trades, so it must be
    /// below the capacity), time windows in `1..=MAX_WINDOW_MS`, a session gap of at least 1 ms, a capacity in
    /// `2..=MAX_CAPACITY`, and a finite, positive tick size and size unit.
    ///
    /// # Errors
    ///
    /// The first [`SpecError`] found, in field order.
    pub fn validate(&self) -> Result<(), SpecError> {
        if !(2..=MAX_CAPACITY).contains(&self.capacity) {
            return Err(SpecError::Capacity {
                found: self.capacity,
            });
        }
        if self.input.kind != InputKind::Trades {
            return self.validate_market();
        }
        for (field, list) in self.input_lists() {
            if !list.is_empty() {
                return Err(SpecError::WrongInput {
                    field,
                    input: self.input.kind,
                });
            }
        }
        for (field, list) in self.trade_lists() {
            // A return lag reads the price `k` trades back, so the ring must hold `k + 1` trades.
            let limit = if field == SpecField::ReturnLagsTrades {
                self.capacity - 1
            } else {
                self.capacity
            };
            if let Some(&found) = list.as_slice().iter().find(|&&w| w == 0 || w > limit) {
                return Err(SpecError::TradeWindow {
                    field,
                    found,
                    capacity: self.capacity,
                });
            }
        }
        for (field, list) in self.time_lists() {
            if let Some(&found) = list
                .as_slice()
                .iter()
                .find(|&&d| d == 0 || d > MAX_WINDOW_MS)
            {
                return Err(SpecError::TimeWindow { field, found });
            }
        }
        if self.session_gap_ms == 0 {
            return Err(SpecError::SessionGap);
        }
        for (field, found) in [
            (SpecField::TickSize, self.tick_size),
            (SpecField::SizeUnit, self.size_unit),
        ] {
            if !(found.is_finite() && found > 0.0) {
                return Err(SpecError::Unit { field, found });
            }
        }
        Ok(())
    }

    /// The bar and book lists with their fields, in feature order (bars first).
    pub fn input_lists(&self) -> [(SpecField, &WindowList); 6] {
        let i = &self.input;
        [
            (SpecField::BarReturnLags, &i.bar_return_lags),
            (SpecField::BarVolumeWindows, &i.bar_volume_windows),
            (SpecField::BookReturnLags, &i.book_return_lags),
            (SpecField::BookDepthLevels, &i.book_depth_levels),
            (SpecField::BookOfiWindows, &i.book_ofi_windows),
            (SpecField::BookTradeWindows, &i.book_trade_windows),
        ]
    }

    /// [`validate`](FeatureSpec::validate) past the capacity for a bars or book spec: the trade lists empty,
    /// the other kind's lists empty, this kind's windows in range, the session gap and the units.
    fn validate_market(&self) -> Result<(), SpecError> {
        let kind = self.input.kind;
        let time_lists = self.time_lists();
        let foreign = self.trade_lists().into_iter().chain(time_lists).chain(
            self.input_lists().into_iter().filter(|(field, _)| {
                let bar = matches!(
                    field,
                    SpecField::BarReturnLags | SpecField::BarVolumeWindows
                );
                bar != (kind == InputKind::Bars)
            }),
        );
        for (field, list) in foreign {
            if !list.is_empty() {
                return Err(SpecError::WrongInput { field, input: kind });
            }
        }
        for (field, list) in self.input_lists() {
            let limit = match field {
                SpecField::BarReturnLags | SpecField::BookReturnLags => self.capacity - 1,
                SpecField::BookDepthLevels => MAX_BOOK_LEVELS as u32,
                _ => self.capacity,
            };
            if let Some(&found) = list.as_slice().iter().find(|&&w| w == 0 || w > limit) {
                return Err(SpecError::CountWindow {
                    field,
                    found,
                    limit,
                });
            }
        }
        if self.session_gap_ms == 0 {
            return Err(SpecError::SessionGap);
        }
        for (field, found) in [
            (SpecField::TickSize, self.tick_size),
            (SpecField::SizeUnit, self.size_unit),
        ] {
            if !(found.is_finite() && found > 0.0) {
                return Err(SpecError::Unit { field, found });
            }
        }
        Ok(())
    }

    /// The number of features the spec produces, in the order of `docs/DATA.md`.
    pub fn feature_count(&self) -> usize {
        let i = &self.input;
        match i.kind {
            InputKind::Trades => {}
            InputKind::Bars => {
                return i.bar_return_lags.len() + BAR_FEATURES + i.bar_volume_windows.len() + 2;
            }
            InputKind::Book => {
                return 1
                    + i.book_return_lags.len()
                    + 1
                    + i.book_depth_levels.len()
                    + i.book_ofi_windows.len()
                    + i.book_trade_windows.len()
                    + 2;
            }
        }
        self.return_lags_trades.len()
            + self.return_lags_ms.len()
            + 1
            + 2 * self.flow_windows_trades.len()
            + 2 * self.flow_windows_ms.len()
            + self.volatility_windows_trades.len()
            + 2 * self.intensity_windows_ms.len()
            + PER_TRADE_FEATURES
            + self.vwap_windows_trades.len()
            + self.vwap_windows_ms.len()
            + 2 * self.range_windows_trades.len()
    }

    /// Warm-up of a session: the features of a trade are *valid* once its session holds at least `.0` earlier
    /// trades and spans at least `.1` milliseconds, so that every window is fully inside the session.
    ///
    /// For a bars spec `.0` counts bars (the longest return lag or volume window) and for a book spec
    /// snapshots (the longest return lag or OFI window); `.1` is then 0.
    pub fn warm_up(&self) -> (u32, u32) {
        let i = &self.input;
        match i.kind {
            InputKind::Trades => {}
            InputKind::Bars => {
                return (i.bar_return_lags.max().max(i.bar_volume_windows.max()), 0);
            }
            InputKind::Book => return (i.book_return_lags.max().max(i.book_ofi_windows.max()), 0),
        }
        let trades = self
            .trade_lists()
            .iter()
            .map(|(_, list)| list.max())
            .max()
            .unwrap_or(0);
        let ms = self
            .time_lists()
            .iter()
            .map(|(_, list)| list.max())
            .max()
            .unwrap_or(0);
        (trades, ms)
    }
}

/// `i64` words the feature engine keeps per trade of its ring: time, price, and the running totals of size,
/// signed size, notional and squared one-trade return before that trade (see `docs/DATA.md`, "State").
pub const RING_WORDS_PER_TRADE: usize = 6;

impl FeatureSpec {
    /// The distinct time windows of all the time lists, in first-appearance order (the engine keeps one pointer
    /// per distinct window, shared by every feature over it), and how many there are.
    pub fn distinct_time_windows(&self) -> ([u32; 4 * MAX_WINDOWS], usize) {
        let mut windows = [0u32; 4 * MAX_WINDOWS];
        let mut count = 0usize;
        for (_, list) in self.time_lists() {
            for &d in list.as_slice() {
                let seen = windows.get(..count).is_some_and(|w| w.contains(&d));
                if !seen && let Some(slot) = windows.get_mut(count) {
                    *slot = d;
                    count += 1;
                }
            }
        }
        (windows, count)
    }

    /// The exact number of `i64` words of state the feature engine (`FeatureEngine`, cargo feature `stream`)
    /// needs for this spec: [`RING_WORDS_PER_TRADE`] per trade of [`capacity`](FeatureSpec::capacity), and per
    /// range window of `w` trades two monotonic deques of `w` words. Everything else the engine holds (the spec,
    /// the per-session scalars, the start of each distinct time window, the deques' heads and lengths, a memo
    /// and a table of logarithms) is a fixed size inside the engine value itself, under 4 KiB.
    ///
    /// `usize::MAX` when the count does not fit a `usize` (impossible for a spec that passes
    /// [`validate`](FeatureSpec::validate): at most about 6.3 million words).
    ///
    /// A bars spec needs [`MARKET_WORDS_PER_EVENT`] words per bar of the capacity, a book spec that many per
    /// snapshot and one more per trade of the capacity.
    pub fn state_words(&self) -> usize {
        let per_event = match self.input.kind {
            InputKind::Trades => 0,
            InputKind::Bars => MARKET_WORDS_PER_EVENT,
            InputKind::Book => MARKET_WORDS_PER_EVENT + 1,
        };
        if per_event > 0 {
            return usize::try_from(self.capacity)
                .ok()
                .and_then(|c| c.checked_mul(per_event))
                .unwrap_or(usize::MAX);
        }
        let ring = usize::try_from(self.capacity)
            .ok()
            .and_then(|c| c.checked_mul(RING_WORDS_PER_TRADE));
        let ranges = self
            .range_windows_trades
            .as_slice()
            .iter()
            .try_fold(0usize, |sum, &w| {
                usize::try_from(w).ok()?.checked_mul(2)?.checked_add(sum)
            });
        ring.zip(ranges)
            .and_then(|(r, g)| r.checked_add(g))
            .unwrap_or(usize::MAX)
    }
}

/// The five features every spec has, one per trade: `log_size`, `burst_size`, `dt_prev_trade`, `dt_last_change`,
/// `trades_since_change`.
pub const PER_TRADE_FEATURES: usize = 5;

/// The three features every bars spec has after its return lags: `bar_range`, `bar_body`, `true_range`.
pub const BAR_FEATURES: usize = 3;

/// `i64` words the feature engine keeps per bar or book snapshot of its ring: the close or the mid (in half
/// ticks), and the running total before it of the volume or the order-flow imbalance.
pub const MARKET_WORDS_PER_EVENT: usize = 2;

impl Default for FeatureSpec {
    /// The 29 features of `docs/DATA.md` for ES futures (tick 0.25, one-contract lots, 30-minute session gap,
    /// 4096 trades kept).
    fn default() -> Self {
        let list = |items: &[u32]| WindowList::new(items).unwrap_or(WindowList::EMPTY);
        FeatureSpec {
            return_lags_trades: list(&[1, 5, 20, 100]),
            return_lags_ms: list(&[1_000, 10_000, 60_000]),
            flow_windows_trades: list(&[20, 100]),
            flow_windows_ms: list(&[60_000]),
            volatility_windows_trades: list(&[20, 100]),
            intensity_windows_ms: list(&[10_000, 60_000]),
            vwap_windows_trades: list(&[100]),
            vwap_windows_ms: list(&[60_000]),
            range_windows_trades: list(&[100]),
            session_gap_ms: 30 * 60 * 1000,
            capacity: 4096,
            tick_size: 0.25,
            size_unit: 1.0,
            input: InputSpec::TRADES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_spec_is_valid_and_has_29_features() {
        let spec = FeatureSpec::default();
        assert_eq!(spec.validate(), Ok(()));
        assert_eq!(spec.feature_count(), 29);
        assert_eq!(spec.warm_up(), (100, 60_000));
        // 6 words for each of 4096 trades and two deques of 100 for the range window; the pointers of the 3
        // distinct time windows (1 s, 10 s, 60 s) live in the engine value.
        assert_eq!(spec.distinct_time_windows().1, 3);
        assert_eq!(spec.state_words(), 6 * 4096 + 2 * 100);
    }

    #[test]
    fn every_bad_field_is_named() {
        let base = FeatureSpec::default();
        let mut spec = base;
        spec.capacity = 1;
        assert_eq!(spec.validate(), Err(SpecError::Capacity { found: 1 }));
        let mut spec = base;
        spec.return_lags_trades = WindowList::new(&[1, 4096]).unwrap();
        assert_eq!(
            spec.validate(),
            Err(SpecError::TradeWindow {
                field: SpecField::ReturnLagsTrades,
                found: 4096,
                capacity: 4096
            })
        );
        let mut spec = base;
        spec.range_windows_trades = WindowList::new(&[0]).unwrap();
        assert!(matches!(
            spec.validate(),
            Err(SpecError::TradeWindow {
                field: SpecField::RangeWindowsTrades,
                found: 0,
                ..
            })
        ));
        let mut spec = base;
        spec.vwap_windows_ms = WindowList::new(&[MAX_WINDOW_MS + 1]).unwrap();
        assert!(matches!(
            spec.validate(),
            Err(SpecError::TimeWindow {
                field: SpecField::VwapWindowsMs,
                ..
            })
        ));
        let mut spec = base;
        spec.session_gap_ms = 0;
        assert_eq!(spec.validate(), Err(SpecError::SessionGap));
        let mut spec = base;
        spec.size_unit = f64::NAN;
        assert!(matches!(
            spec.validate(),
            Err(SpecError::Unit {
                field: SpecField::SizeUnit,
                ..
            })
        ));
        assert!(WindowList::new(&[1; MAX_WINDOWS + 1]).is_none());
    }
}

/// What one feature column measures; with its window it names the column (see [`FeatureName`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeatureKind {
    /// `ret_{k}t`: log return over the last `k` trades, in basis points.
    ReturnTrades,
    /// `ret_{d}`: log return against the last trade at or before `t - d`, in basis points.
    ReturnMs,
    /// `sign`: the trade's side, or the tick rule.
    Sign,
    /// `svol_{w}t`: signed volume over the last `w` trades, log-scaled.
    SignedVolumeTrades,
    /// `ofi_{w}t`: signed over total volume of the last `w` trades.
    FlowImbalanceTrades,
    /// `svol_{d}`: signed volume over the last `d` ms, log-scaled.
    SignedVolumeMs,
    /// `ofi_{d}`: signed over total volume of the last `d` ms.
    FlowImbalanceMs,
    /// `rvol_{w}t`: realized volatility of the one-trade returns over the last `w` trades.
    VolatilityTrades,
    /// `rate_{d}`: trades per second over the last `d` ms, log-scaled.
    TradeRateMs,
    /// `vrate_{d}`: lots per second over the last `d` ms, log-scaled.
    VolumeRateMs,
    /// `log_size`: the trade's size, log-scaled.
    LogSize,
    /// `burst_size`: the size of the trades sharing this timestamp so far, log-scaled.
    BurstSize,
    /// `dt_prev_trade`: seconds since the previous trade of the session, log-scaled.
    DtPrevTrade,
    /// `dt_last_change`: seconds since the last price change, log-scaled.
    DtLastChange,
    /// `trades_since_change`: trades since the last price change, log-scaled.
    TradesSinceChange,
    /// `vwap_dev_{w}t`: price minus the VWAP of the last `w` trades, in ticks.
    VwapDevTrades,
    /// `vwap_dev_{d}`: price minus the VWAP of the last `d` ms, in ticks.
    VwapDevMs,
    /// `range_{w}t`: high minus low of the last `w` trades, in ticks.
    RangeTrades,
    /// `range_pos_{w}t`: where the price sits in that range, from -1 (low) to 1 (high).
    RangePosTrades,
    /// `ret_{k}b`: log return of the close against the close `k` bars back, in basis points.
    ReturnBars,
    /// `bar_range`: `(high - low) / close`, in basis points.
    BarRange,
    /// `bar_body`: `(close - open) / close`, in basis points.
    BarBody,
    /// `true_range`: the range stretched to the previous close, over the close, in basis points.
    TrueRange,
    /// `relvol_{w}b`: the bar's volume over the mean volume of the last `w` bars.
    RelativeVolumeBars,
    /// `tod_sin`: sine of the UTC time of day.
    TimeOfDaySin,
    /// `tod_cos`: cosine of the UTC time of day.
    TimeOfDayCos,
    /// `spread`: best ask minus best bid, in ticks.
    Spread,
    /// `mret_{k}e`: log return of the mid against the mid `k` snapshots back, in basis points.
    MidReturnEvents,
    /// `micro_dev`: the micro-price minus the mid, in ticks.
    MicroDeviation,
    /// `depth_imb_{n}`: bid minus ask size over their sum, over the top `n` levels.
    DepthImbalance,
    /// `bofi_{w}e`: the order-flow imbalance of the best level summed over the last `w` snapshots, log-scaled.
    BookFlowEvents,
    /// `tsi_{w}t`: the mean trade sign of the last `w` trades.
    TradeSignTrades,
    /// `qdep_bid`: the fraction of the best bid's queue consumed since its price was set.
    QueueDepletionBid,
    /// `qdep_ask`: the fraction of the best ask's queue consumed since its price was set.
    QueueDepletionAsk,
}

/// One feature column: its kind and window (0 for the per-trade features). `Display` writes the column name of
/// `docs/DATA.md`, for example `ret_5t`, `ofi_60s` or `log_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FeatureName {
    /// What the column measures.
    pub kind: FeatureKind,
    /// Its window or lag, in trades or milliseconds as the kind says; 0 for the per-trade features.
    pub window: u32,
}

impl fmt::Display for FeatureName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use FeatureKind as K;
        let (prefix, unit) = match self.kind {
            K::ReturnTrades => ("ret", Unit::Trades),
            K::ReturnMs => ("ret", Unit::Ms),
            K::Sign => return f.write_str("sign"),
            K::SignedVolumeTrades => ("svol", Unit::Trades),
            K::FlowImbalanceTrades => ("ofi", Unit::Trades),
            K::SignedVolumeMs => ("svol", Unit::Ms),
            K::FlowImbalanceMs => ("ofi", Unit::Ms),
            K::VolatilityTrades => ("rvol", Unit::Trades),
            K::TradeRateMs => ("rate", Unit::Ms),
            K::VolumeRateMs => ("vrate", Unit::Ms),
            K::LogSize => return f.write_str("log_size"),
            K::BurstSize => return f.write_str("burst_size"),
            K::DtPrevTrade => return f.write_str("dt_prev_trade"),
            K::DtLastChange => return f.write_str("dt_last_change"),
            K::TradesSinceChange => return f.write_str("trades_since_change"),
            K::VwapDevTrades => ("vwap_dev", Unit::Trades),
            K::VwapDevMs => ("vwap_dev", Unit::Ms),
            K::RangeTrades => ("range", Unit::Trades),
            K::RangePosTrades => ("range_pos", Unit::Trades),
            K::ReturnBars => ("ret", Unit::Bars),
            K::BarRange => return f.write_str("bar_range"),
            K::BarBody => return f.write_str("bar_body"),
            K::TrueRange => return f.write_str("true_range"),
            K::RelativeVolumeBars => ("relvol", Unit::Bars),
            K::TimeOfDaySin => return f.write_str("tod_sin"),
            K::TimeOfDayCos => return f.write_str("tod_cos"),
            K::Spread => return f.write_str("spread"),
            K::MidReturnEvents => ("mret", Unit::Events),
            K::MicroDeviation => return f.write_str("micro_dev"),
            K::DepthImbalance => ("depth_imb", Unit::Plain),
            K::BookFlowEvents => ("bofi", Unit::Events),
            K::TradeSignTrades => ("tsi", Unit::Trades),
            K::QueueDepletionBid => return f.write_str("qdep_bid"),
            K::QueueDepletionAsk => return f.write_str("qdep_ask"),
        };
        let w = self.window;
        match unit {
            Unit::Trades => write!(f, "{prefix}_{w}t"),
            Unit::Bars => write!(f, "{prefix}_{w}b"),
            Unit::Events => write!(f, "{prefix}_{w}e"),
            Unit::Plain => write!(f, "{prefix}_{w}"),
            Unit::Ms if w.is_multiple_of(1000) => write!(f, "{prefix}_{}s", w / 1000),
            Unit::Ms => write!(f, "{prefix}_{w}ms"),
        }
    }
}

enum Unit {
    Trades,
    Ms,
    Bars,
    Events,
    Plain,
}

impl FeatureSpec {
    /// Calls `each` with every feature column in order; [`FeatureSpec::feature_count`] calls in all.
    pub fn for_each_feature(&self, mut each: impl FnMut(FeatureName)) {
        use FeatureKind as K;
        let mut one = |kind, window| each(FeatureName { kind, window });
        let input = &self.input;
        match input.kind {
            InputKind::Trades => {}
            InputKind::Bars => {
                for &k in input.bar_return_lags.as_slice() {
                    one(K::ReturnBars, k);
                }
                for kind in [K::BarRange, K::BarBody, K::TrueRange] {
                    one(kind, 0);
                }
                for &w in input.bar_volume_windows.as_slice() {
                    one(K::RelativeVolumeBars, w);
                }
                one(K::TimeOfDaySin, 0);
                one(K::TimeOfDayCos, 0);
                return;
            }
            InputKind::Book => {
                one(K::Spread, 0);
                for &k in input.book_return_lags.as_slice() {
                    one(K::MidReturnEvents, k);
                }
                one(K::MicroDeviation, 0);
                for &n in input.book_depth_levels.as_slice() {
                    one(K::DepthImbalance, n);
                }
                for &w in input.book_ofi_windows.as_slice() {
                    one(K::BookFlowEvents, w);
                }
                for &w in input.book_trade_windows.as_slice() {
                    one(K::TradeSignTrades, w);
                }
                one(K::QueueDepletionBid, 0);
                one(K::QueueDepletionAsk, 0);
                return;
            }
        }
        for &w in self.return_lags_trades.as_slice() {
            one(K::ReturnTrades, w);
        }
        for &w in self.return_lags_ms.as_slice() {
            one(K::ReturnMs, w);
        }
        one(K::Sign, 0);
        for &w in self.flow_windows_trades.as_slice() {
            one(K::SignedVolumeTrades, w);
            one(K::FlowImbalanceTrades, w);
        }
        for &w in self.flow_windows_ms.as_slice() {
            one(K::SignedVolumeMs, w);
            one(K::FlowImbalanceMs, w);
        }
        for &w in self.volatility_windows_trades.as_slice() {
            one(K::VolatilityTrades, w);
        }
        for &w in self.intensity_windows_ms.as_slice() {
            one(K::TradeRateMs, w);
            one(K::VolumeRateMs, w);
        }
        for kind in [
            K::LogSize,
            K::BurstSize,
            K::DtPrevTrade,
            K::DtLastChange,
            K::TradesSinceChange,
        ] {
            one(kind, 0);
        }
        for &w in self.vwap_windows_trades.as_slice() {
            one(K::VwapDevTrades, w);
        }
        for &w in self.vwap_windows_ms.as_slice() {
            one(K::VwapDevMs, w);
        }
        for &w in self.range_windows_trades.as_slice() {
            one(K::RangeTrades, w);
            one(K::RangePosTrades, w);
        }
    }

    /// The `index`-th feature column, or `None` past the last.
    pub fn feature(&self, index: usize) -> Option<FeatureName> {
        let mut found = None;
        let mut i = 0usize;
        self.for_each_feature(|name| {
            if i == index {
                found = Some(name);
            }
            i += 1;
        });
        found
    }
}

#[cfg(test)]
mod name_tests {
    extern crate std;
    use std::string::{String, ToString};
    use std::vec::Vec;

    use super::*;

    #[test]
    fn the_default_names_are_those_of_docs_data_md() {
        let spec = FeatureSpec::default();
        let mut names: Vec<String> = Vec::new();
        spec.for_each_feature(|n| names.push(n.to_string()));
        assert_eq!(names.len(), spec.feature_count());
        assert_eq!(
            names.join(","),
            "ret_1t,ret_5t,ret_20t,ret_100t,ret_1s,ret_10s,ret_60s,sign,svol_20t,ofi_20t,svol_100t,ofi_100t,\
             svol_60s,ofi_60s,rvol_20t,rvol_100t,rate_10s,vrate_10s,rate_60s,vrate_60s,log_size,burst_size,\
             dt_prev_trade,dt_last_change,trades_since_change,vwap_dev_100t,vwap_dev_60s,range_100t,range_pos_100t"
        );
        assert_eq!(
            spec.feature(28).map(|n| n.to_string()).as_deref(),
            Some("range_pos_100t")
        );
        assert_eq!(spec.feature(29), None);
        let mut ms = spec;
        ms.return_lags_ms = WindowList::new(&[250]).unwrap();
        assert_eq!(
            ms.feature(4).map(|n| n.to_string()).as_deref(),
            Some("ret_250ms")
        );
    }
}
