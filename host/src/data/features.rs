//! Causal per-trade features, computed by the core's streaming [`FeatureEngine`], the code the device runs.
//!
//! Row `i` of [`Features::values`] is computed from `trades[..=i]` only, so appending trades never changes
//! an earlier row. Every window is reset at a session break (a gap between consecutive trades longer than
//! [`FeatureConfig::session_gap_ms`]), so no feature reaches across a break, and clipped to the last
//! [`FeatureConfig::capacity`] trades.
//! Each feature's formula and units are documented in `docs/DATA.md`, its arithmetic in `docs/ARITHMETIC.md`.
//!
//! [`FeatureConfig`] is the serde form of the pipeline's `[data.features]`; [`FeatureConfig::to_spec`] turns
//! it into the core's [`FeatureSpec`], whose validation is the one definition of the rules. Trades reach the
//! engine in integer units: prices in ticks of [`FeatureConfig::tick_size`], sizes in lots of
//! [`FeatureConfig::size_unit`].

use ndarray::Array2;
use serde::{Deserialize, Serialize};
use tickq_core::features::{
    FeatureEngine, FeatureSpec, MAX_WINDOWS, Side as CoreSide, Trade as CoreTrade, WindowList,
};

use super::csv::{Side, Trade};
use super::error::DataError;

/// How far (in ticks or lots) a price or size may be from the integer grid and still be taken as on it.
pub const GRID_TOLERANCE: f64 = 1e-6;

/// The largest price in ticks and size in lots a trade may have: integers up to 2⁵³ are exact in `f64`.
pub const MAX_GRID_UNITS: f64 = 9_007_199_254_740_992.0;

/// Which features to compute and over which windows.
///
/// Trade-count windows and lags are in trades, time windows and lags in milliseconds.
/// A window "over the last `w` trades" at trade `i` covers trades `i-w+1..=i`; a time window of `d` ms
/// covers the trades with `t_i - d < t <= t_i`. Both are clipped to the current session and to the last
/// [`capacity`](FeatureConfig::capacity) trades.
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
    /// Minimum price increment (0.25 for ES): prices reach the engine as integer ticks, and price distances
    /// are in ticks.
    pub tick_size: f64,
    /// The size of one lot (1 for contracts): sizes reach the engine as integer lots.
    pub size_unit: f64,
    /// A gap between consecutive trades longer than this (ms) starts a new session and resets every window.
    pub session_gap_ms: i64,
    /// The most trades the engine keeps: every trade window must fit in it, and a time window holding more
    /// trades is clipped to the newest `capacity`. The engine's state is about 48 bytes a trade of it.
    pub capacity: usize,
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
            size_unit: 1.0,
            session_gap_ms: 30 * 60 * 1000,
            capacity: 4096,
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

    /// The configuration a blob's [`FeatureSpec`] describes: the inverse of [`FeatureConfig::to_spec`], so a
    /// tool reading a blob computes the features the model was trained on.
    pub fn from_spec(spec: &FeatureSpec) -> FeatureConfig {
        let trades = |l: &WindowList| l.as_slice().iter().map(|&w| w as usize).collect();
        let ms = |l: &WindowList| l.as_slice().iter().map(|&w| i64::from(w)).collect();
        FeatureConfig {
            return_lags_trades: trades(&spec.return_lags_trades),
            return_lags_ms: ms(&spec.return_lags_ms),
            flow_windows_trades: trades(&spec.flow_windows_trades),
            flow_windows_ms: ms(&spec.flow_windows_ms),
            volatility_windows_trades: trades(&spec.volatility_windows_trades),
            intensity_windows_ms: ms(&spec.intensity_windows_ms),
            vwap_windows_trades: trades(&spec.vwap_windows_trades),
            vwap_windows_ms: ms(&spec.vwap_windows_ms),
            range_windows_trades: trades(&spec.range_windows_trades),
            tick_size: spec.tick_size,
            session_gap_ms: i64::from(spec.session_gap_ms),
            capacity: spec.capacity as usize,
            size_unit: spec.size_unit,
        }
    }

    /// The core's [`FeatureSpec`] of this configuration. It is not validated here: [`FeatureConfig::validate`]
    /// and [`compute_features`] do that.
    ///
    /// # Errors
    ///
    /// [`DataError::TooManyWindows`] when a list holds more than [`MAX_WINDOWS`] windows, and
    /// [`DataError::FeatureSetting`] when a window, the session gap or the capacity does not fit a `u32`.
    pub fn to_spec(&self) -> Result<FeatureSpec, DataError> {
        let trades = |field, items: &[usize]| window_list(field, items, |w| u32::try_from(w).ok());
        let ms = |field, items: &[i64]| window_list(field, items, |w| u32::try_from(w).ok());
        let fits = |field, expected, value: i128| {
            u32::try_from(value).map_err(|_| DataError::FeatureSetting {
                field,
                expected,
                found: value.to_string(),
            })
        };
        Ok(FeatureSpec {
            return_lags_trades: trades("return_lags_trades", &self.return_lags_trades)?,
            return_lags_ms: ms("return_lags_ms", &self.return_lags_ms)?,
            flow_windows_trades: trades("flow_windows_trades", &self.flow_windows_trades)?,
            flow_windows_ms: ms("flow_windows_ms", &self.flow_windows_ms)?,
            volatility_windows_trades: trades(
                "volatility_windows_trades",
                &self.volatility_windows_trades,
            )?,
            intensity_windows_ms: ms("intensity_windows_ms", &self.intensity_windows_ms)?,
            vwap_windows_trades: trades("vwap_windows_trades", &self.vwap_windows_trades)?,
            vwap_windows_ms: ms("vwap_windows_ms", &self.vwap_windows_ms)?,
            range_windows_trades: trades("range_windows_trades", &self.range_windows_trades)?,
            session_gap_ms: fits(
                "session_gap_ms",
                "from 1 to 4294967295 ms",
                i128::from(self.session_gap_ms),
            )?,
            capacity: fits(
                "capacity",
                "from 2 to 1048576 trades",
                self.capacity as i128,
            )?,
            tick_size: self.tick_size,
            size_unit: self.size_unit,
            input: tickq_core::features::InputSpec::TRADES,
        })
    }

    /// Checks the configuration: the core's [`FeatureSpec::validate`] (windows from 1 to the capacity or
    /// one week, a capacity from 2 to 2²⁰ trades, a session gap of at least 1 ms, a finite, positive tick size
    /// and size unit), and that no two features share a name.
    ///
    /// [`build_dataset`](super::build_dataset) and [`compute_features`] call it.
    ///
    /// # Errors
    ///
    /// [`DataError::TooManyWindows`] or [`DataError::FeatureSetting`] from [`FeatureConfig::to_spec`],
    /// [`DataError::FeatureSpec`] with the core's reason, or [`DataError::DuplicateFeature`].
    pub fn validate(&self) -> Result<(), DataError> {
        self.checked_spec().map(|_| ())
    }

    /// [`FeatureConfig::to_spec`], validated.
    pub(crate) fn checked_spec(&self) -> Result<FeatureSpec, DataError> {
        let spec = self.to_spec()?;
        spec.validate()
            .map_err(|source| DataError::FeatureSpec { source })?;
        let mut names = self.feature_names();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|p| p[0] == p[1]) {
            return Err(DataError::DuplicateFeature(pair[0].clone()));
        }
        Ok(spec)
    }
}

/// A config list as the core's [`WindowList`].
///
/// # Errors
///
/// [`DataError::FeatureSetting`] naming `field` for a window that does not fit a `u32`,
/// [`DataError::TooManyWindows`] for more than [`MAX_WINDOWS`].
pub(super) fn window_list<T: Copy + std::fmt::Display>(
    field: &'static str,
    items: &[T],
    to_u32: impl Fn(T) -> Option<u32>,
) -> Result<WindowList, DataError> {
    let converted = items
        .iter()
        .map(|&w| {
            to_u32(w).ok_or_else(|| DataError::FeatureSetting {
                field,
                expected: "a whole number that fits 32 bits (0 to 4294967295)",
                found: w.to_string(),
            })
        })
        .collect::<Result<Vec<u32>, DataError>>()?;
    WindowList::new(&converted).ok_or(DataError::TooManyWindows {
        field,
        found: items.len(),
        max: MAX_WINDOWS,
    })
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

/// A price or size as a whole number of grid units (ticks or lots) from 0 to [`MAX_GRID_UNITS`], or `None`
/// when it is further than [`GRID_TOLERANCE`] units from the grid or out of that range.
pub(super) fn on_grid(value: f64, unit: f64) -> Option<f64> {
    let units = value / unit;
    let whole = units.round();
    ((units - whole).abs() <= GRID_TOLERANCE && (0.0..=MAX_GRID_UNITS).contains(&whole))
        .then_some(whole)
}

/// `trade` (the `index`-th, 0-based) in the engine's integer units.
pub(crate) fn to_core_trade(
    index: usize,
    trade: &Trade,
    cfg: &FeatureConfig,
) -> Result<CoreTrade, DataError> {
    let price_ticks = on_grid(trade.price, cfg.tick_size)
        .filter(|&ticks| ticks >= 1.0)
        .ok_or(DataError::OffGrid {
            trade: index + 1,
            quantity: "price",
            value: trade.price,
            unit_name: "tick_size",
            unit: cfg.tick_size,
        })?;
    let size_lots = on_grid(trade.size, cfg.size_unit)
        .filter(|&lots| lots <= f64::from(u32::MAX))
        .ok_or(DataError::OffGrid {
            trade: index + 1,
            quantity: "size",
            value: trade.size,
            unit_name: "size_unit",
            unit: cfg.size_unit,
        })?;
    Ok(CoreTrade {
        time_ms: trade.timestamp_ms,
        // Both are whole numbers in range, so the conversions are exact.
        price_ticks: price_ticks as i64,
        size_lots: size_lots as u32,
        side: match trade.side {
            None => CoreSide::Unknown,
            Some(Side::Buy) => CoreSide::Buy,
            Some(Side::Sell) => CoreSide::Sell,
        },
    })
}

/// `trades` in the engine's integer units (ticks of `cfg.tick_size`, lots of `cfg.size_unit`), as
/// [`compute_features`] converts them: what a device fed from this file receives.
///
/// # Errors
///
/// [`DataError::OffGrid`] naming the first trade (1-based) whose price or size is off the grid or out of range.
pub fn core_trades(trades: &[Trade], cfg: &FeatureConfig) -> Result<Vec<CoreTrade>, DataError> {
    trades
        .iter()
        .enumerate()
        .map(|(i, t)| to_core_trade(i, t, cfg))
        .collect()
}

/// Computes the causal features of every trade with the core's [`FeatureEngine`], trade by trade.
///
/// Each trade's price becomes `round(price / tick_size)` ticks and its size `round(size / size_unit)` lots.
/// Every value is finite. Runs in O(n * F).
///
/// # Errors
///
/// The errors of [`FeatureConfig::validate`]; [`DataError::OffGrid`] when a price or size is more than
/// [`GRID_TOLERANCE`](crate::data::GRID_TOLERANCE) units from the grid, a price is below one tick or a value is above [`MAX_GRID_UNITS`](crate::data::MAX_GRID_UNITS)
/// (a size above `u32::MAX` lots); [`DataError::Trade`] when the engine refuses a trade (a time before the
/// previous trade's, which [`parse_trades`](super::parse_trades) already rules out).
pub fn compute_features(trades: &[Trade], cfg: &FeatureConfig) -> Result<Features, DataError> {
    let spec = cfg.checked_spec()?;
    run_engine(
        &spec,
        trades.len(),
        |engine| engine.session_trades(),
        |i, engine, row| {
            let core_trade = to_core_trade(i, &trades[i], cfg)?;
            engine
                .push(&core_trade, row)
                .map_err(|source| DataError::Trade {
                    trade: i + 1,
                    source,
                })
        },
    )
}

/// Runs the feature engine of `spec` over `n` input rows into one row of features each: `push(i, engine, row)`
/// feeds input row `i` to the engine, which writes its features to `row`, and says whether the row is valid;
/// `session_rows` counts the rows of the engine's current session (1 marks a session's first row). The one loop
/// of [`compute_features`] and [`compute_market_features`](super::compute_market_features).
pub(super) fn run_engine(
    spec: &FeatureSpec,
    n: usize,
    session_rows: fn(&FeatureEngine<'_>) -> u64,
    mut push: impl FnMut(usize, &mut FeatureEngine<'_>, &mut [f32]) -> Result<bool, DataError>,
) -> Result<Features, DataError> {
    let mut names = Vec::with_capacity(spec.feature_count());
    spec.for_each_feature(|name| names.push(name.to_string()));
    let mut state = vec![0i64; spec.state_words()];
    let mut engine = FeatureEngine::new(spec, &mut state)
        .map_err(|source| DataError::FeatureEngine { source })?;
    let mut values = Array2::<f32>::zeros((n, names.len()));
    let mut row = vec![0f32; names.len()];
    let mut valid = Vec::with_capacity(n);
    let mut session_starts = Vec::new();
    for (i, mut out) in values.rows_mut().into_iter().enumerate() {
        let is_valid = push(i, &mut engine, &mut row)?;
        out.assign(&ndarray::ArrayView1::from(&row[..]));
        valid.push(is_valid);
        if session_rows(&engine) == 1 {
            session_starts.push(i);
        }
    }
    let first_valid = valid.iter().position(|&v| v).unwrap_or(n);
    Ok(Features {
        values,
        names,
        first_valid,
        valid,
        session_starts,
    })
}

#[cfg(test)]
mod tests;
