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
    MAX_BOOK_LEVELS, Side as CoreSide, Trade as CoreTrade,
};

use super::book::{BookError, BookEvent, BookOptions, SnapshotPolicy};
use super::dataset::{Dataset, assemble};
use super::error::DataError;
use super::features::{FeatureConfig, Features, on_grid, run_engine, window_list};
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

    /// The price each row is labelled on: the close of a bar, the mid of a quote.
    fn label_prices(&self) -> Vec<f64> {
        match self {
            MarketRows::Bars(b) => b.iter().map(|b| b.close).collect(),
            MarketRows::Quotes(q) => q.iter().map(|q| 0.5 * (q.bid + q.ask)).collect(),
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
    run_engine(
        &spec,
        rows.len(),
        |engine| engine.session_events(),
        |i, engine, row| {
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
                    engine.push_bar(&bar, row)
                }
                MarketRows::Quotes(quotes) => {
                    let q = &quotes[i];
                    let level = BookLevel {
                        bid_ticks: units(&rows, i, "bid", q.bid, &cfg)?,
                        bid_lots: units(&rows, i, "bid_size", q.bid_size, &cfg)? as u32,
                        ask_ticks: units(&rows, i, "ask", q.ask, &cfg)?,
                        ask_lots: units(&rows, i, "ask_size", q.ask_size, &cfg)? as u32,
                    };
                    engine.push_book(&BookLevels::quote(q.timestamp_ms, level), row)
                }
            };
            pushed.map_err(|source| DataError::Market {
                row_kind: rows.row_kind(),
                row: i + 1,
                source,
            })
        },
    )
}

/// The label of every row on a plain price series (the close of a bar, the mid of a quote) `horizon` rows
/// ahead, through [`label_prices`], the labels' one implementation. Sessions are applied when the samples are
/// assembled, as for trades.
pub fn market_labels(rows: MarketRows<'_>, cfg: &LabelConfig) -> Vec<Option<u8>> {
    label_prices(&rows.label_prices(), &[], cfg)
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

/// What a data file holds: the `--input` setting (`[data] input`), stored in a checkpoint's data settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum DataInput {
    /// Trades (`time,price,size[,side]`): the trade features of `FeatureConfig`.
    #[default]
    Trades,
    /// OHLCV bars: [`MarketInput::Bars`].
    Bars,
    /// Top-of-book quotes: [`MarketInput::Quotes`].
    Quotes,
    /// An order-by-order feed (with an optional trades file) replayed into book snapshots ([`super::load_book`]).
    Book,
}

impl DataInput {
    /// The name as `--input` and the config write it.
    pub fn name(self) -> &'static str {
        match self {
            DataInput::Trades => "trades",
            DataInput::Bars => "bars",
            DataInput::Quotes => "quotes",
            DataInput::Book => "book",
        }
    }
}

/// The replay settings of an order-by-order input (the grid is [`MarketConfig::tick_size`] and
/// [`MarketConfig::size_unit`], written as decimal text for [`BookOptions::from_text`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BookInput {
    /// The trades file merged by time, if any (`--trades`).
    pub trades: Option<std::path::PathBuf>,
    /// Levels per side of each snapshot, 1 to [`MAX_BOOK_LEVELS`] (the core engine's most).
    pub levels: usize,
    /// The leading snapshot's orders.
    pub snapshot_policy: SnapshotPolicy,
    /// Drop a trailing block that deletes every resting order.
    pub drop_trailing_deletes: bool,
    /// Ignore deletions of orders not in the book.
    pub ignore_unknown_deletes: bool,
}

impl Default for BookInput {
    fn default() -> Self {
        BookInput {
            trades: None,
            levels: MAX_BOOK_LEVELS,
            snapshot_policy: SnapshotPolicy::default(),
            drop_trailing_deletes: true,
            ignore_unknown_deletes: false,
        }
    }
}

impl BookInput {
    /// The [`BookOptions`] of these settings on the grid of `market`.
    ///
    /// # Errors
    ///
    /// [`BookError::BadUnit`] for a grid size that is not a positive decimal, [`BookError::Setting`] for `levels`
    /// out of range (1 to [`MAX_BOOK_LEVELS`] here: the core engine reads no more).
    pub fn options(&self, market: &MarketConfig) -> Result<BookOptions, BookError> {
        // Rust writes an f64 in decimal notation, never with an exponent: `1e-8` is `0.00000001`.
        let mut opts =
            BookOptions::from_text(&market.tick_size.to_string(), &market.size_unit.to_string())?;
        opts.levels = self.levels;
        opts.snapshot_policy = self.snapshot_policy;
        opts.drop_trailing_deletes = self.drop_trailing_deletes;
        opts.ignore_unknown_deletes = self.ignore_unknown_deletes;
        opts.validate()?;
        if let Err(source) =
            crate::limits::Count::new(1, MAX_BOOK_LEVELS as u64).check_usize(self.levels)
        {
            return Err(BookError::Setting {
                setting: "levels",
                source,
            });
        }
        Ok(opts)
    }
}

/// The input a data set is built from and that input's settings: the `input` part of
/// [`DatasetConfig`](super::DatasetConfig), absent (trades) in checkpoints written before it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InputConfig {
    /// What the file holds.
    pub kind: DataInput,
    /// The bar or book features (bars, quotes, book); its `input` is set from `kind`.
    pub market: MarketConfig,
    /// The replay settings (book).
    pub book: BookInput,
}

impl InputConfig {
    /// Whether this is the trade input with nothing else set (what older checkpoints mean).
    pub fn is_default(&self) -> bool {
        *self == InputConfig::default()
    }

    /// The market settings with `input` set from [`InputConfig::kind`].
    pub fn market(&self) -> MarketConfig {
        MarketConfig {
            input: if self.kind == DataInput::Bars {
                MarketInput::Bars
            } else {
                MarketInput::Quotes
            },
            ..self.market.clone()
        }
    }
}

/// A book data set: the samples and what the bridge noticed.
#[derive(Debug, Clone)]
pub struct BookDataset {
    /// The samples, one per two-sided snapshot that closes a full window.
    pub dataset: Dataset,
    /// Snapshots fed to the engine (two-sided).
    pub snapshots: usize,
    /// Snapshots skipped because a side was empty.
    pub one_sided: usize,
    /// Level sizes above the core's `u32` lots, clamped to `u32::MAX`.
    pub clamped_sizes: usize,
    /// Trades fed to the engine.
    pub trades: usize,
}

impl BookDataset {
    /// One line per thing worth telling (skipped snapshots, clamped sizes), naming `source`.
    pub fn notes(&self, source: &str) -> Vec<String> {
        let mut out = Vec::new();
        if self.one_sided > 0 {
            out.push(format!(
                "note: {source}: {} one-sided book snapshot(s) skipped (no mid, no spread)",
                self.one_sided
            ));
        }
        if self.clamped_sizes > 0 {
            out.push(format!(
                "note: {source}: {} level size(s) above {} lots clamped to it",
                self.clamped_sizes,
                u32::MAX
            ));
        }
        out
    }
}

/// Builds the samples of an order-by-order replay: each two-sided [`BookEvent::Snapshot`] goes to the core
/// engine as [`BookLevels`] (its top `market.book_depth_levels` levels at most, [`MAX_BOOK_LEVELS`]) through
/// `push_book`, each [`BookEvent::Trade`] through `push` (it updates the trade-sign windows and gives no row),
/// one feature row per snapshot; labels read the mid `(best bid + best ask) / 2 * tick_size` `horizon` snapshots
/// ahead.
///
/// A snapshot with an empty side is skipped and counted ([`BookDataset::one_sided`]): it has no mid to label
/// and no spread, and the engine refuses it; a feed that empties one side for a moment stays usable.
///
/// # Errors
///
/// [`DataError::Market`] naming the orders file's line of a snapshot the engine refuses (`row_kind` is
/// `orders line`), [`DataError::Trade`] naming the trades file's line of a refused trade, and the errors of
/// [`build_market_dataset`].
pub fn build_book_dataset(
    events: &[BookEvent],
    cfg: &MarketDatasetConfig,
) -> Result<BookDataset, DataError> {
    cfg.labels.validate()?;
    crate::limits::TIME_STEPS
        .check_usize(cfg.time_steps)
        .map_err(|source| DataError::Setting {
            setting: "time_steps",
            source,
        })?;
    let market = MarketConfig {
        input: MarketInput::Quotes,
        ..cfg.market.clone()
    };
    let spec = market.checked_spec()?;
    let mut names = Vec::with_capacity(spec.feature_count());
    spec.for_each_feature(|name| names.push(name.to_string()));
    let mut state = vec![0i64; spec.state_words()];
    let mut engine = FeatureEngine::new(&spec, &mut state)
        .map_err(|source| DataError::FeatureEngine { source })?;
    let two_sided = events
        .iter()
        .filter(|e| matches!(e, BookEvent::Snapshot(s) if !s.bids.is_empty() && !s.asks.is_empty()))
        .count();
    let bytes = (two_sided as u64)
        .saturating_mul(names.len() as u64 + 2)
        .saturating_mul(4);
    crate::limits::check_memory(bytes, || {
        format!("the features of {two_sided} book snapshots")
    })?;
    let mut values = Array2::<f32>::zeros((two_sided, names.len()));
    let mut row = vec![0f32; names.len()];
    let mut valid = Vec::with_capacity(two_sided);
    let mut session_starts = Vec::new();
    let mut prices = Vec::with_capacity(two_sided);
    let mut new_session = false;
    let (mut one_sided, mut clamped, mut trades) = (0usize, 0usize, 0usize);
    let mut lots = |size: u64| {
        u32::try_from(size).unwrap_or_else(|_| {
            clamped += 1;
            u32::MAX
        })
    };
    for event in events {
        match event {
            BookEvent::Trade {
                time_ms,
                line,
                price_ticks,
                size_lots,
                side,
                ..
            } => {
                let trade = CoreTrade {
                    time_ms: *time_ms,
                    price_ticks: *price_ticks,
                    size_lots: lots(*size_lots),
                    side: match side {
                        Some(super::Side::Buy) => CoreSide::Buy,
                        Some(super::Side::Sell) => CoreSide::Sell,
                        None => CoreSide::Unknown,
                    },
                };
                engine
                    .push(&trade, &mut row)
                    .map_err(|source| DataError::Trade {
                        trade: usize::try_from(*line).unwrap_or(usize::MAX),
                        source,
                    })?;
                trades += 1;
            }
            BookEvent::Snapshot(s) => {
                if s.bids.is_empty() || s.asks.is_empty() {
                    one_sided += 1;
                    continue;
                }
                let depth = s.bids.len().min(s.asks.len()).min(MAX_BOOK_LEVELS);
                let mut levels = [BookLevel::default(); MAX_BOOK_LEVELS];
                for (k, slot) in levels.iter_mut().take(depth).enumerate() {
                    *slot = BookLevel {
                        bid_ticks: s.bids[k].price_ticks,
                        bid_lots: lots(s.bids[k].size_lots),
                        ask_ticks: s.asks[k].price_ticks,
                        ask_lots: lots(s.asks[k].size_lots),
                    };
                }
                let book = BookLevels::new(s.time_ms, &levels[..depth])
                    .expect("1 to MAX_BOOK_LEVELS levels");
                let i = valid.len();
                let is_valid =
                    engine
                        .push_book(&book, &mut row)
                        .map_err(|source| DataError::Market {
                            row_kind: "orders line",
                            row: usize::try_from(s.line).unwrap_or(usize::MAX),
                            source,
                        })?;
                values
                    .row_mut(i)
                    .assign(&ndarray::ArrayView1::from(&row[..]));
                valid.push(is_valid);
                if new_session || engine.session_events() == 1 {
                    session_starts.push(i);
                }
                // Mid in price units; both prices are whole ticks.
                prices.push(
                    0.5 * (s.bids[0].price_ticks + s.asks[0].price_ticks) as f64 * market.tick_size,
                );
            }
        }
        // A trade may open a session; its first snapshot is then the session's first row.
        new_session = match event {
            BookEvent::Trade { .. } => new_session || engine.session_events() == 1,
            BookEvent::Snapshot(_) => false,
        };
    }
    let n = valid.len();
    let first_valid = valid.iter().position(|&v| v).unwrap_or(n);
    let features = Features {
        values,
        names,
        first_valid,
        valid,
        session_starts,
    };
    let labels = label_prices(&prices, &[], &cfg.labels);
    let warm = spec.warm_up().0;
    let dataset = assemble(
        features,
        &labels,
        cfg.time_steps,
        cfg.labels.horizon,
        |n, sessions| {
            format!(
                "{n} book snapshots in {sessions} session(s); each session needs {warm} snapshots of warm-up, then {} \
                 time steps and {} snapshots of label horizon",
                cfg.time_steps, cfg.labels.horizon
            )
        },
    )?;
    Ok(BookDataset {
        dataset,
        snapshots: n,
        one_sided,
        clamped_sizes: clamped,
        trades,
    })
}

#[cfg(test)]
mod tests;
