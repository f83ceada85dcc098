//! Bars and quotes: their features through the core's [`FeatureEngine`] (the device's code), their labels on
//! the close or the mid, and their data sets.
//!
//! [`MarketConfig`] is the serde form of the bar and quote settings; [`MarketConfig::to_spec`] turns it into a
//! core [`FeatureSpec`] of kind [`InputKind::Bars`] or [`InputKind::Book`], whose validation is the one definition
//! of the rules. Rows reach the engine in integer units, prices in ticks of [`MarketConfig::tick_size`], sizes in
//! lots of [`MarketConfig::size_unit`], and a value off that grid is refused naming its row. `docs/DATA.md`,
//! "Bars and quotes", defines every feature.

use ndarray::Array2;
use serde::{Deserialize, Serialize};
use tickq_core::features::{
    Bar as CoreBar, BookLevel, BookLevels, FeatureEngine, FeatureSpec, InputKind, InputSpec,
};

use super::dataset::{Dataset, assemble};
use super::error::DataError;
use super::features::{FeatureConfig, Features, on_grid, window_list};
use super::labels::{LabelConfig, label_prices};
pub use super::market_csv::{
    Bar, LoadedRows, Quote, load_bars, load_bars_with, load_quotes, load_quotes_with, parse_bars,
    parse_quotes,
};

/// What a market data file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarketInput {
    /// OHLCV bars (`time,open,high,low,close,volume`): the core's [`InputKind::Bars`].
    #[default]
    Bars,
    /// Top-of-book quotes (`time,bid,ask,bid_size,ask_size`): the core's [`InputKind::Book`], one level.
    Quotes,
}

/// The rows of a market file, as read.
#[derive(Debug, Clone, Copy)]
pub enum MarketRows<'a> {
    /// Bars, in time order.
    Bars(&'a [Bar]),
    /// Quotes, in time order.
    Quotes(&'a [Quote]),
}

impl MarketRows<'_> {
    /// The number of rows.
    pub fn len(&self) -> usize {
        match self {
            MarketRows::Bars(b) => b.len(),
            MarketRows::Quotes(q) => q.len(),
        }
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `bar` or `quote`, as messages name a row.
    fn row_kind(&self) -> &'static str {
        match self {
            MarketRows::Bars(_) => "bar",
            MarketRows::Quotes(_) => "quote",
        }
    }

    /// The input kind these rows are.
    fn input(&self) -> MarketInput {
        match self {
            MarketRows::Bars(_) => MarketInput::Bars,
            MarketRows::Quotes(_) => MarketInput::Quotes,
        }
    }

    /// The price each row is labelled on: the close of a bar, the mid of a quote, with the row's time.
    fn label_prices(&self) -> Vec<(i64, f64)> {
        match self {
            MarketRows::Bars(b) => b.iter().map(|b| (b.timestamp_ms, b.close)).collect(),
            MarketRows::Quotes(q) => q
                .iter()
                .map(|q| (q.timestamp_ms, 0.5 * (q.bid + q.ask)))
                .collect(),
        }
    }
}

/// Which bar or quote features to compute and over which windows (the `[data.market]` settings).
///
/// Bar windows and lags are in bars, book ones in quotes (snapshots), the trade-sign windows in trades. Every
/// window is clipped to the current session and to the last [`capacity`](MarketConfig::capacity) rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MarketConfig {
    /// Bars or quotes.
    pub input: MarketInput,
    /// Lags `k` (bars) of the close-to-close returns `ret_{k}b`.
    pub bar_return_lags: Vec<usize>,
    /// Windows (bars) of the relative volume `relvol_{w}b`.
    pub bar_volume_windows: Vec<usize>,
    /// A gap between consecutive bars longer than this (ms) starts a new session: its own setting, so that
    /// hourly or daily bars are not each a session.
    pub bar_session_gap_ms: i64,
    /// Lags `k` (quotes) of the mid returns `mret_{k}e`.
    pub book_return_lags: Vec<usize>,
    /// Depths `n` (levels, 1 to 5; a quote file has 1) of the depth imbalance `depth_imb_{n}`.
    pub book_depth_levels: Vec<usize>,
    /// Windows (quotes) of the order-flow imbalance `bofi_{w}e`.
    pub book_ofi_windows: Vec<usize>,
    /// Windows (trades) of the trade-sign imbalance `tsi_{w}t` (a quote file has no trades: empty by default).
    pub book_trade_windows: Vec<usize>,
    /// A gap between consecutive quotes longer than this (ms) starts a new session.
    pub book_session_gap_ms: i64,
    /// One tick in price units (0.00001 for a five-digit FX pair): prices become integer ticks.
    pub tick_size: f64,
    /// One lot in size units: volumes and sizes become integer lots.
    pub size_unit: f64,
    /// The most bars or quotes the engine keeps (2 to 2²⁰); 16 bytes of state each.
    pub capacity: usize,
}

impl Default for MarketConfig {
    fn default() -> Self {
        MarketConfig {
            input: MarketInput::Bars,
            bar_return_lags: vec![1, 4, 24],
            bar_volume_windows: vec![24],
            bar_session_gap_ms: 36 * 3_600_000,
            book_return_lags: vec![1, 10, 100],
            book_depth_levels: vec![1],
            book_ofi_windows: vec![10, 100],
            book_trade_windows: Vec::new(),
            book_session_gap_ms: 30 * 60_000,
            tick_size: 0.00001,
            size_unit: 1.0,
            capacity: 4096,
        }
    }
}

impl MarketConfig {
    /// The core's [`FeatureSpec`] of this configuration (of kind bars or book, as [`input`](Self::input)
    /// says), not yet validated.
    ///
    /// # Errors
    ///
    /// [`DataError::TooManyWindows`] or [`DataError::FeatureSetting`] as [`FeatureConfig::to_spec`] gives them.
    pub fn to_spec(&self) -> Result<FeatureSpec, DataError> {
        let count = |field, items: &[usize]| window_list(field, items, |w| u32::try_from(w).ok());
        let bars = self.input == MarketInput::Bars;
        // The units, the capacity and the session gap go through the trade config's own conversion.
        let base = FeatureConfig {
            return_lags_trades: Vec::new(),
            return_lags_ms: Vec::new(),
            flow_windows_trades: Vec::new(),
            flow_windows_ms: Vec::new(),
            volatility_windows_trades: Vec::new(),
            intensity_windows_ms: Vec::new(),
            vwap_windows_trades: Vec::new(),
            vwap_windows_ms: Vec::new(),
            range_windows_trades: Vec::new(),
            tick_size: self.tick_size,
            size_unit: self.size_unit,
            session_gap_ms: if bars {
                self.bar_session_gap_ms
            } else {
                self.book_session_gap_ms
            },
            capacity: self.capacity,
        };
        let mut spec = base.to_spec().map_err(|e| match e {
            DataError::FeatureSetting {
                field: "session_gap_ms",
                expected,
                found,
            } => DataError::FeatureSetting {
                field: if bars {
                    "bar_session_gap_ms"
                } else {
                    "book_session_gap_ms"
                },
                expected,
                found,
            },
            other => other,
        })?;
        spec.input = if bars {
            InputSpec {
                kind: InputKind::Bars,
                bar_return_lags: count("bar_return_lags", &self.bar_return_lags)?,
                bar_volume_windows: count("bar_volume_windows", &self.bar_volume_windows)?,
                ..InputSpec::TRADES
            }
        } else {
            InputSpec {
                kind: InputKind::Book,
                book_return_lags: count("book_return_lags", &self.book_return_lags)?,
                book_depth_levels: count("book_depth_levels", &self.book_depth_levels)?,
                book_ofi_windows: count("book_ofi_windows", &self.book_ofi_windows)?,
                book_trade_windows: count("book_trade_windows", &self.book_trade_windows)?,
                ..InputSpec::TRADES
            }
        };
        Ok(spec)
    }

    /// [`MarketConfig::to_spec`], validated by the core's [`FeatureSpec::validate`] (the field named), and no two
    /// features with one name.
    ///
    /// # Errors
    ///
    /// The errors of [`MarketConfig::to_spec`], [`DataError::FeatureSpec`] or [`DataError::DuplicateFeature`].
    pub fn checked_spec(&self) -> Result<FeatureSpec, DataError> {
        let spec = self.to_spec()?;
        spec.validate()
            .map_err(|source| DataError::FeatureSpec { source })?;
        let mut names = Vec::new();
        spec.for_each_feature(|n| names.push(n.to_string()));
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|p| p[0] == p[1]) {
            return Err(DataError::DuplicateFeature(pair[0].clone()));
        }
        Ok(spec)
    }
}

/// A price or size of row `row` (0-based) in ticks or lots, or [`DataError::MarketOffGrid`] naming it.
fn units(
    rows: &MarketRows<'_>,
    row: usize,
    quantity: &'static str,
    value: f64,
    cfg: &MarketConfig,
) -> Result<i64, DataError> {
    let price = !matches!(quantity, "volume" | "bid_size" | "ask_size");
    let (unit_name, unit) = if price {
        ("tick_size", cfg.tick_size)
    } else {
        ("size_unit", cfg.size_unit)
    };
    on_grid(value, unit)
        .filter(|&u| {
            if price {
                u >= 1.0
            } else {
                u <= f64::from(u32::MAX)
            }
        })
        // A whole number in range: the conversion is exact.
        .map(|u| u as i64)
        .ok_or(DataError::MarketOffGrid {
            row_kind: rows.row_kind(),
            row: row + 1,
            quantity,
            value,
            unit_name,
            unit,
        })
}

/// Computes the features of every bar or quote with the core's [`FeatureEngine`], row by row: the code a
/// device runs ([`tickq_core::stream::StreamSession::push_bar`] and `push_book`).
///
/// # Errors
///
/// The errors of [`MarketConfig::checked_spec`], [`DataError::MarketOffGrid`] for a price or size off the grid,
/// and [`DataError::Market`] when the engine refuses a row (a bar's prices out of order, a crossed or locked
/// quote), naming the row.
pub fn compute_market_features(
    rows: MarketRows<'_>,
    cfg: &MarketConfig,
) -> Result<Features, DataError> {
    let cfg = MarketConfig {
        input: rows.input(),
        ..cfg.clone()
    };
    let spec = cfg.checked_spec()?;
    let mut names = Vec::with_capacity(spec.feature_count());
    spec.for_each_feature(|name| names.push(name.to_string()));
    let mut state = vec![0i64; spec.state_words()];
    let mut engine = FeatureEngine::new(&spec, &mut state)
        .map_err(|source| DataError::FeatureEngine { source })?;
    let n = rows.len();
    let mut values = Array2::<f32>::zeros((n, names.len()));
    let mut row = vec![0f32; names.len()];
    let mut valid = Vec::with_capacity(n);
    let mut session_starts = Vec::new();
    for (i, mut out) in values.rows_mut().into_iter().enumerate() {
        let pushed = match rows {
            MarketRows::Bars(bars) => {
                let b = &bars[i];
                let bar = CoreBar {
                    time_ms: b.timestamp_ms,
                    open_ticks: units(&rows, i, "open", b.open, &cfg)?,
                    high_ticks: units(&rows, i, "high", b.high, &cfg)?,
                    low_ticks: units(&rows, i, "low", b.low, &cfg)?,
                    close_ticks: units(&rows, i, "close", b.close, &cfg)?,
                    volume_lots: units(&rows, i, "volume", b.volume, &cfg)? as u32,
                };
                engine.push_bar(&bar, &mut row)
            }
            MarketRows::Quotes(quotes) => {
                let q = &quotes[i];
                let level = BookLevel {
                    bid_ticks: units(&rows, i, "bid", q.bid, &cfg)?,
                    bid_lots: units(&rows, i, "bid_size", q.bid_size, &cfg)? as u32,
                    ask_ticks: units(&rows, i, "ask", q.ask, &cfg)?,
                    ask_lots: units(&rows, i, "ask_size", q.ask_size, &cfg)? as u32,
                };
                engine.push_book(&BookLevels::quote(q.timestamp_ms, level), &mut row)
            }
        };
        let is_valid = pushed.map_err(|source| DataError::Market {
            row_kind: rows.row_kind(),
            row: i + 1,
            source,
        })?;
        out.assign(&ndarray::ArrayView1::from(&row[..]));
        valid.push(is_valid);
        if engine.session_events() == 1 {
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

/// The label of every row on a plain price series (the close of a bar, the mid of a quote) `horizon` rows
/// ahead, through [`label_prices`], the labels' one implementation. Sessions are applied when the samples are
/// assembled, as for trades.
pub fn market_labels(rows: MarketRows<'_>, cfg: &LabelConfig) -> Vec<Option<u8>> {
    let prices: Vec<f64> = rows
        .label_prices()
        .into_iter()
        .map(|(_, price)| price)
        .collect();
    label_prices(&prices, &[], cfg)
}

/// Everything [`build_market_dataset`] needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MarketDatasetConfig {
    /// Which features to compute.
    pub market: MarketConfig,
    /// How to label each row: the horizon is in rows (bars or quotes), the dead band in price units.
    pub labels: LabelConfig,
    /// Window length `T` in rows (at least 1).
    pub time_steps: usize,
}

impl Default for MarketDatasetConfig {
    /// Default bar features and labels, `time_steps` = 1.
    fn default() -> Self {
        MarketDatasetConfig {
            market: MarketConfig::default(),
            labels: LabelConfig::default(),
            time_steps: 1,
        }
    }
}

/// Joins windows of `T` feature rows of bars or quotes with their labels, as [`build_dataset`] does for
/// trades: a sample ends at every row that closes `T` valid rows of one session and whose label's horizon
/// stays in that session.
///
/// [`build_dataset`]: super::build_dataset
///
/// # Errors
///
/// The errors of [`compute_market_features`] and [`LabelConfig::validate`], [`DataError::Setting`] for
/// `time_steps`, [`DataError::TooFewSamples`] when no sample remains and [`DataError::Memory`].
pub fn build_market_dataset(
    rows: MarketRows<'_>,
    cfg: &MarketDatasetConfig,
) -> Result<Dataset, DataError> {
    cfg.labels.validate()?;
    crate::limits::TIME_STEPS
        .check_usize(cfg.time_steps)
        .map_err(|source| DataError::Setting {
            setting: "time_steps",
            source,
        })?;
    let features = compute_market_features(rows, &cfg.market)?;
    let labels = market_labels(rows, &cfg.labels);
    let kind = rows.row_kind();
    let market = MarketConfig {
        input: rows.input(),
        ..cfg.market.clone()
    };
    let warm = market.to_spec().map(|s| s.warm_up().0).unwrap_or(0);
    assemble(
        features,
        &labels,
        cfg.time_steps,
        cfg.labels.horizon,
        |n, sessions| {
            format!(
                "{n} {kind}s in {sessions} session(s); each session needs {warm} {kind}s of warm-up, then {} time \
                 steps and {} {kind}s of label horizon",
                cfg.time_steps, cfg.labels.horizon
            )
        },
    )
}

#[cfg(test)]
mod tests;
