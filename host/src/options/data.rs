//! How samples are built: [`LabelOptions`] (how samples are labelled), [`FeatureOptions`] (which features, over
//! which windows, in which units) and [`DataOptions`] (both, with the window length), for `tickq train`,
//! `tickq import` and the pipeline's `[data]` table.

use serde::{Deserialize, Serialize};

#[cfg(feature = "cli")]
use super::cli::{
    list_help, ranged_default, real_f64 as real_f64_arg, whole as whole_arg,
    whole_i64 as whole_i64_arg, window_list, window_list_i64,
};
use crate::data::{
    BookInput, DataInput, DatasetConfig, DeadBand, FeatureConfig, InputConfig, LabelConfig,
    MarketConfig, SnapshotPolicy,
};
#[cfg(feature = "cli")]
use crate::limits;

/// The label settings a user gives; what is absent keeps [`LabelConfig::default`]. Their ranges are checked with
/// the rest of the data settings ([`DatasetConfig::validate`](crate::data::DatasetConfig::validate)).
///
/// `dead_band` (price units) and `dead_band_bps` (basis points of the price) exclude each other: on the command
/// line clap refuses both, in a config file serde does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(try_from = "LabelOptionFields")]
pub struct LabelOptions {
    /// Label horizon: the price move over the next `horizon` trades is classified (default 100).
    #[cfg_attr(feature = "cli", arg(long, value_name = "TRADES", allow_negative_numbers = true,
        value_parser = whole_arg(limits::HORIZON),
        help = ranged_default("Label horizon: the price move over the next H trades is classified",
            LabelConfig::default().horizon, limits::HORIZON)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub horizon: Option<usize>,
    /// Dead band in price units: moves within ±band are labelled flat (default: `dead_band_bps`).
    #[cfg_attr(feature = "cli", arg(long, value_name = "PRICE", allow_negative_numbers = true,
        conflicts_with = "dead_band_bps",
        value_parser = real_f64_arg(limits::DEAD_BAND),
        help = super::cli::ranged("Dead band in price units: moves within +-band are labelled flat \
            (instead of --dead-band-bps)", limits::DEAD_BAND)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_band: Option<f64>,
    /// Dead band in basis points of the price at the label's start: a move is flat when
    /// `|p_{t+H} - p_t| <= bps * 1e-4 * p_t` (default 1).
    #[cfg_attr(feature = "cli", arg(long, value_name = "BPS", allow_negative_numbers = true,
        value_parser = real_f64_arg(limits::DEAD_BAND),
        help = ranged_default("Dead band in basis points of the price: a move is flat when \
            |p(t+H) - p(t)| <= BPS * 1e-4 * p(t)", DeadBand::DEFAULT_BPS, limits::DEAD_BAND)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_band_bps: Option<f64>,
}

/// [`LabelOptions`] as serde reads them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelOptionFields {
    horizon: Option<usize>,
    dead_band: Option<f64>,
    dead_band_bps: Option<f64>,
}

impl TryFrom<LabelOptionFields> for LabelOptions {
    type Error = crate::data::BothDeadBands;

    fn try_from(f: LabelOptionFields) -> Result<Self, Self::Error> {
        if f.dead_band.is_some() && f.dead_band_bps.is_some() {
            return Err(crate::data::BothDeadBands);
        }
        Ok(LabelOptions {
            horizon: f.horizon,
            dead_band: f.dead_band,
            dead_band_bps: f.dead_band_bps,
        })
    }
}

impl LabelOptions {
    /// `base` with the fields that are set (`dead_band` before `dead_band_bps`, which never meet: see the type).
    #[must_use]
    pub fn apply(&self, base: LabelConfig) -> LabelConfig {
        let dead_band = match (self.dead_band, self.dead_band_bps) {
            (Some(price), _) => DeadBand::Price(price),
            (None, Some(bps)) => DeadBand::Bps(bps),
            (None, None) => base.dead_band,
        };
        LabelConfig {
            horizon: self.horizon.unwrap_or(base.horizon),
            dead_band,
        }
    }
}

/// The feature settings a user gives, field for field those of [`FeatureConfig`] (the keys of `[data.features]`);
/// what is absent keeps [`FeatureConfig::default`]. On the command line a window list is comma-separated
/// (`--return-lags-trades 1,5,20`; an empty value is an empty list). Ranges are checked by
/// [`FeatureConfig::validate`], the one definition of the rules, except that a flag's value must be a whole
/// number (a list at most [`tickq_core::features::MAX_WINDOWS`] long), checked as clap parses it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct FeatureOptions {
    /// Lags (trades) of the returns `ret_{k}t` (default 1,5,20,100).
    #[cfg_attr(feature = "cli", arg(long, value_name = "TRADES,..", allow_hyphen_values = true, allow_negative_numbers = true,
        value_parser = window_list(limits::TRADE_WINDOW),
        help = list_help("Lags (trades) of the returns ret_{k}t", &FeatureConfig::default().return_lags_trades, limits::TRADE_WINDOW)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_lags_trades: Option<std::vec::Vec<usize>>,
    /// Lags (ms) of the returns `ret_{d}` (default 1000,10000,60000).
    #[cfg_attr(feature = "cli", arg(long, value_name = "MS,..", allow_hyphen_values = true, allow_negative_numbers = true,
        value_parser = window_list_i64(limits::TIME_WINDOW_MS),
        help = list_help("Lags (ms) of the returns ret_{d}", &FeatureConfig::default().return_lags_ms, limits::TIME_WINDOW_MS)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_lags_ms: Option<std::vec::Vec<i64>>,
    /// Windows (trades) of `svol_{w}t` and `ofi_{w}t` (default 20,100).
    #[cfg_attr(feature = "cli", arg(long, value_name = "TRADES,..", allow_hyphen_values = true, allow_negative_numbers = true,
        value_parser = window_list(limits::TRADE_WINDOW),
        help = list_help("Windows (trades) of svol_{w}t and ofi_{w}t", &FeatureConfig::default().flow_windows_trades, limits::TRADE_WINDOW)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_windows_trades: Option<std::vec::Vec<usize>>,
    /// Windows (ms) of `svol_{d}` and `ofi_{d}` (default 60000).
    #[cfg_attr(feature = "cli", arg(long, value_name = "MS,..", allow_hyphen_values = true, allow_negative_numbers = true,
        value_parser = window_list_i64(limits::TIME_WINDOW_MS),
        help = list_help("Windows (ms) of svol_{d} and ofi_{d}", &FeatureConfig::default().flow_windows_ms, limits::TIME_WINDOW_MS)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_windows_ms: Option<std::vec::Vec<i64>>,
    /// Windows (trades) of the realized volatility `rvol_{w}t` (default 20,100).
    #[cfg_attr(feature = "cli", arg(long, value_name = "TRADES,..", allow_hyphen_values = true, allow_negative_numbers = true,
        value_parser = window_list(limits::TRADE_WINDOW),
        help = list_help("Windows (trades) of the realized volatility rvol_{w}t", &FeatureConfig::default().volatility_windows_trades, limits::TRADE_WINDOW)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volatility_windows_trades: Option<std::vec::Vec<usize>>,
    /// Windows (ms) of `rate_{d}` and `vrate_{d}` (default 10000,60000).
    #[cfg_attr(feature = "cli", arg(long, value_name = "MS,..", allow_hyphen_values = true, allow_negative_numbers = true,
        value_parser = window_list_i64(limits::TIME_WINDOW_MS),
        help = list_help("Windows (ms) of rate_{d} and vrate_{d}", &FeatureConfig::default().intensity_windows_ms, limits::TIME_WINDOW_MS)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intensity_windows_ms: Option<std::vec::Vec<i64>>,
    /// Windows (trades) of `vwap_dev_{w}t` (default 100).
    #[cfg_attr(feature = "cli", arg(long, value_name = "TRADES,..", allow_hyphen_values = true, allow_negative_numbers = true,
        value_parser = window_list(limits::TRADE_WINDOW),
        help = list_help("Windows (trades) of vwap_dev_{w}t", &FeatureConfig::default().vwap_windows_trades, limits::TRADE_WINDOW)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vwap_windows_trades: Option<std::vec::Vec<usize>>,
    /// Windows (ms) of `vwap_dev_{d}` (default 60000).
    #[cfg_attr(feature = "cli", arg(long, value_name = "MS,..", allow_hyphen_values = true, allow_negative_numbers = true,
        value_parser = window_list_i64(limits::TIME_WINDOW_MS),
        help = list_help("Windows (ms) of vwap_dev_{d}", &FeatureConfig::default().vwap_windows_ms, limits::TIME_WINDOW_MS)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vwap_windows_ms: Option<std::vec::Vec<i64>>,
    /// Windows (trades) of `range_{w}t` and `range_pos_{w}t` (default 100).
    #[cfg_attr(feature = "cli", arg(long, value_name = "TRADES,..", allow_hyphen_values = true, allow_negative_numbers = true,
        value_parser = window_list(limits::TRADE_WINDOW),
        help = list_help("Windows (trades) of range_{w}t and range_pos_{w}t", &FeatureConfig::default().range_windows_trades, limits::TRADE_WINDOW)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_windows_trades: Option<std::vec::Vec<usize>>,
    /// One tick in price units (default 0.25, the ES tick).
    #[cfg_attr(feature = "cli", arg(long, value_name = "PRICE", allow_negative_numbers = true,
        value_parser = real_f64_arg(limits::TICK_SIZE),
        help = ranged_default("One tick in price units: prices become integer ticks",
            FeatureConfig::default().tick_size, limits::TICK_SIZE)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tick_size: Option<f64>,
    /// One lot in size units (default 1).
    #[cfg_attr(feature = "cli", arg(long, value_name = "SIZE", allow_negative_numbers = true,
        value_parser = real_f64_arg(limits::TICK_SIZE),
        help = ranged_default("One lot in size units: sizes become integer lots",
            FeatureConfig::default().size_unit, limits::TICK_SIZE)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_unit: Option<f64>,
    /// A longer gap between trades (ms) starts a session (default 1800000, 30 minutes).
    #[cfg_attr(feature = "cli", arg(long, value_name = "MS", allow_negative_numbers = true,
        value_parser = whole_i64_arg(limits::SESSION_GAP_MS),
        help = ranged_default("A gap between trades longer than this (ms) starts a new session",
            FeatureConfig::default().session_gap_ms, limits::SESSION_GAP_MS)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_gap_ms: Option<i64>,
    /// The most trades the feature engine keeps (default 4096).
    #[cfg_attr(feature = "cli", arg(long, value_name = "TRADES", allow_negative_numbers = true,
        value_parser = whole_arg(limits::CAPACITY),
        help = ranged_default("The most trades the feature engine keeps; every window is clipped to them",
            FeatureConfig::default().capacity, limits::CAPACITY)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<usize>,
}

impl FeatureOptions {
    /// `base` with the fields that are set.
    #[must_use]
    pub fn apply(&self, base: FeatureConfig) -> FeatureConfig {
        let pick = |set: &Option<Vec<usize>>, base: Vec<usize>| set.clone().unwrap_or(base);
        let pick_ms = |set: &Option<Vec<i64>>, base: Vec<i64>| set.clone().unwrap_or(base);
        FeatureConfig {
            return_lags_trades: pick(&self.return_lags_trades, base.return_lags_trades),
            return_lags_ms: pick_ms(&self.return_lags_ms, base.return_lags_ms),
            flow_windows_trades: pick(&self.flow_windows_trades, base.flow_windows_trades),
            flow_windows_ms: pick_ms(&self.flow_windows_ms, base.flow_windows_ms),
            volatility_windows_trades: pick(
                &self.volatility_windows_trades,
                base.volatility_windows_trades,
            ),
            intensity_windows_ms: pick_ms(&self.intensity_windows_ms, base.intensity_windows_ms),
            vwap_windows_trades: pick(&self.vwap_windows_trades, base.vwap_windows_trades),
            vwap_windows_ms: pick_ms(&self.vwap_windows_ms, base.vwap_windows_ms),
            range_windows_trades: pick(&self.range_windows_trades, base.range_windows_trades),
            tick_size: self.tick_size.unwrap_or(base.tick_size),
            size_unit: self.size_unit.unwrap_or(base.size_unit),
            session_gap_ms: self.session_gap_ms.unwrap_or(base.session_gap_ms),
            capacity: self.capacity.unwrap_or(base.capacity),
        }
    }
}

/// The input kind a user gives and its settings (`--input bars|quotes|book` and the bar, book and replay flags;
/// the `input`, `[data.market]` and `[data.book]` keys of the pipeline's `[data]` table). What is absent keeps
/// [`InputConfig::default`] (trades). For bars, quotes and books, `--tick-size`, `--size-unit`,
/// `--session-gap-ms` and `--capacity` of [`FeatureOptions`] set the [`MarketConfig`] fields of the same meaning
/// (the book's grid too); unset, the market defaults hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct InputOptions {
    /// What the data file holds (default trades).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_enum,
            value_name = "KIND",
            help = "What the data file holds: trades, bars (time,open,high,low,close,volume), quotes \
            (time,bid,ask,bid_size,ask_size) or book (an order-by-order feed; see --trades) [default: trades]"
        )
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<DataInput>,
    /// Lags (bars) of the bar returns `ret_{k}b` (default 1,4,24).
    #[cfg_attr(feature = "cli", arg(long, value_name = "BARS,..", allow_hyphen_values = true, allow_negative_numbers = true,
        value_parser = window_list(limits::TRADE_WINDOW),
        help = list_help("Lags (bars) of the bar returns ret_{k}b", &MarketConfig::default().bar_return_lags, limits::TRADE_WINDOW)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bar_return_lags: Option<std::vec::Vec<usize>>,
    /// Windows (bars) of the relative volume `relvol_{w}b` (default 24).
    #[cfg_attr(feature = "cli", arg(long, value_name = "BARS,..", allow_hyphen_values = true, allow_negative_numbers = true,
        value_parser = window_list(limits::TRADE_WINDOW),
        help = list_help("Windows (bars) of the relative volume relvol_{w}b", &MarketConfig::default().bar_volume_windows, limits::TRADE_WINDOW)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bar_volume_windows: Option<std::vec::Vec<usize>>,
    /// Lags (snapshots) of the mid returns `mret_{k}e` (default 1,10,100).
    #[cfg_attr(feature = "cli", arg(long, value_name = "SNAPSHOTS,..", allow_hyphen_values = true, allow_negative_numbers = true,
        value_parser = window_list(limits::TRADE_WINDOW),
        help = list_help("Lags (snapshots) of the mid returns mret_{k}e", &MarketConfig::default().book_return_lags, limits::TRADE_WINDOW)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub book_return_lags: Option<std::vec::Vec<usize>>,
    /// Depths (levels, 1 to 5) of the depth imbalance `depth_imb_{n}` (default 1).
    #[cfg_attr(feature = "cli", arg(long, value_name = "LEVELS,..", allow_hyphen_values = true, allow_negative_numbers = true,
        value_parser = window_list(limits::TRADE_WINDOW),
        help = list_help("Depths (levels, 1 to 5) of the depth imbalance depth_imb_{n}", &MarketConfig::default().book_depth_levels, limits::TRADE_WINDOW)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub book_depth_levels: Option<std::vec::Vec<usize>>,
    /// Windows (snapshots) of the order-flow imbalance `bofi_{w}e` (default 10,100).
    #[cfg_attr(feature = "cli", arg(long, value_name = "SNAPSHOTS,..", allow_hyphen_values = true, allow_negative_numbers = true,
        value_parser = window_list(limits::TRADE_WINDOW),
        help = list_help("Windows (snapshots) of the order-flow imbalance bofi_{w}e", &MarketConfig::default().book_ofi_windows, limits::TRADE_WINDOW)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub book_ofi_windows: Option<std::vec::Vec<usize>>,
    /// Windows (trades) of the trade-sign imbalance `tsi_{w}t` of a book (default none).
    #[cfg_attr(feature = "cli", arg(long, value_name = "TRADES,..", allow_hyphen_values = true, allow_negative_numbers = true,
        value_parser = window_list(limits::TRADE_WINDOW),
        help = list_help("Windows (trades) of the trade-sign imbalance tsi_{w}t of a book", &MarketConfig::default().book_trade_windows, limits::TRADE_WINDOW)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub book_trade_windows: Option<std::vec::Vec<usize>>,
    /// The trades file merged into an order-by-order book by time (`--input book`).
    #[cfg_attr(feature = "cli", arg(long = "trades", value_name = "CSV"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub book_trades: Option<std::path::PathBuf>,
    /// Levels per side of each book snapshot, 1 to 5 (default 5).
    #[cfg_attr(feature = "cli", arg(long = "levels", value_name = "N", allow_negative_numbers = true,
        value_parser = whole_arg(limits::BOOK_LEVELS),
        help = ranged_default("Levels per side of each book snapshot", 5, limits::BOOK_LEVELS)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub book_levels: Option<usize>,
    /// The leading snapshot's orders of a book: live-only, reappearing (default) or all.
    #[cfg_attr(feature = "cli", arg(long, value_name = "POLICY"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_policy: Option<SnapshotPolicy>,
    /// Drop a book's trailing block when it deletes every resting order (default true).
    #[cfg_attr(feature = "cli", arg(long, value_name = "BOOL", action = clap::ArgAction::Set))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_trailing_deletes: Option<bool>,
    /// Ignore deletions of orders not in the book instead of refusing them (default false).
    #[cfg_attr(feature = "cli", arg(long, value_name = "BOOL", num_args = 0..=1,
        default_missing_value = "true", action = clap::ArgAction::Set))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_unknown_deletes: Option<bool>,
}

impl InputOptions {
    /// `base` with the fields that are set; `features` gives the grid, session gap and capacity of a
    /// non-trade input.
    #[must_use]
    pub fn apply(&self, base: InputConfig, features: &FeatureOptions) -> InputConfig {
        let kind = self.input.unwrap_or(base.kind);
        let pick = |set: &Option<Vec<usize>>, base: Vec<usize>| set.clone().unwrap_or(base);
        let m = base.market;
        let (mut bar_gap, mut book_gap) = (m.bar_session_gap_ms, m.book_session_gap_ms);
        if let Some(gap) = features.session_gap_ms {
            if kind == DataInput::Bars {
                bar_gap = gap;
            } else {
                book_gap = gap;
            }
        }
        let market = MarketConfig {
            input: m.input,
            bar_return_lags: pick(&self.bar_return_lags, m.bar_return_lags),
            bar_volume_windows: pick(&self.bar_volume_windows, m.bar_volume_windows),
            bar_session_gap_ms: bar_gap,
            book_return_lags: pick(&self.book_return_lags, m.book_return_lags),
            book_depth_levels: pick(&self.book_depth_levels, m.book_depth_levels),
            book_ofi_windows: pick(&self.book_ofi_windows, m.book_ofi_windows),
            book_trade_windows: pick(&self.book_trade_windows, m.book_trade_windows),
            book_session_gap_ms: book_gap,
            tick_size: features.tick_size.unwrap_or(m.tick_size),
            size_unit: features.size_unit.unwrap_or(m.size_unit),
            capacity: features.capacity.unwrap_or(m.capacity),
        };
        let b = base.book;
        let book = BookInput {
            trades: self.book_trades.clone().or(b.trades),
            levels: self.book_levels.unwrap_or(b.levels),
            snapshot_policy: self.snapshot_policy.unwrap_or(b.snapshot_policy),
            drop_trailing_deletes: self
                .drop_trailing_deletes
                .unwrap_or(b.drop_trailing_deletes),
            ignore_unknown_deletes: self
                .ignore_unknown_deletes
                .unwrap_or(b.ignore_unknown_deletes),
        };
        if kind == DataInput::Trades {
            // Nothing else belongs to trades: keep the stored form of a trade data set unchanged.
            return InputConfig::default();
        }
        InputConfig { kind, market, book }
    }
}

/// Every data setting a user gives: the window length, the labels and the features. `tickq train` and
/// `tickq import` flatten it into their flags, and the pipeline's `[data]` table (`time_steps`,
/// `[data.labels]`, `[data.features]`) is read into the same structs; what is absent keeps
/// [`DatasetConfig::default`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct DataOptions {
    /// Window length: how many past trades form one sample (default 1).
    #[cfg_attr(feature = "cli", arg(long, value_name = "T", allow_negative_numbers = true,
        value_parser = whole_arg(limits::TIME_STEPS),
        help = ranged_default("Window length: how many past ticks form one sample (1 = current tick only)",
            DatasetConfig::default().time_steps, limits::TIME_STEPS)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_steps: Option<usize>,
    /// How samples are labelled.
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(default)]
    pub labels: LabelOptions,
    /// Which features are computed.
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(default)]
    pub features: FeatureOptions,
    /// What the file holds, and that input's settings.
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(default)]
    pub input: InputOptions,
}

impl DataOptions {
    /// `base` with the fields that are set.
    #[must_use]
    pub fn apply(&self, base: DatasetConfig) -> DatasetConfig {
        DatasetConfig {
            features: self.features.apply(base.features),
            labels: self.labels.apply(base.labels),
            time_steps: self.time_steps.unwrap_or(base.time_steps),
            read: base.read,
            input: self.input.apply(base.input, &self.features),
        }
    }

    /// [`DataOptions::apply`] to [`DatasetConfig::default`].
    #[must_use]
    pub fn config(&self) -> DatasetConfig {
        self.apply(DatasetConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_keeps_absent_fields() {
        assert_eq!(DataOptions::default().config(), DatasetConfig::default());
        let o = DataOptions {
            time_steps: Some(4),
            labels: LabelOptions {
                horizon: Some(50),
                dead_band: Some(0.25),
                dead_band_bps: None,
            },
            features: FeatureOptions {
                return_lags_trades: Some(vec![1, 5]),
                intensity_windows_ms: Some(vec![]),
                session_gap_ms: Some(60_000),
                ..FeatureOptions::default()
            },
            input: InputOptions::default(),
        };
        let c = o.config();
        assert_eq!(c.time_steps, 4);
        assert_eq!(c.labels.horizon, 50);
        assert_eq!(c.labels.dead_band, DeadBand::Price(0.25));
        assert_eq!(c.features.return_lags_trades, [1, 5]);
        assert!(c.features.intensity_windows_ms.is_empty());
        assert_eq!(c.features.session_gap_ms, 60_000);
        assert_eq!(c.features.capacity, FeatureConfig::default().capacity);
        let bps = LabelOptions {
            dead_band_bps: Some(20.0),
            ..LabelOptions::default()
        };
        assert_eq!(
            bps.apply(LabelConfig::default()).dead_band,
            DeadBand::Bps(20.0)
        );
    }

    #[test]
    fn toml_reads_every_key_and_refuses_both_bands() {
        let o: DataOptions = toml::from_str(
            "time_steps = 2\n[labels]\ndead_band_bps = 3.0\n[features]\ncapacity = 512\ntick_size = 0.01\n",
        )
        .expect("reads");
        assert_eq!(o.time_steps, Some(2));
        assert_eq!(o.labels.dead_band_bps, Some(3.0));
        assert_eq!(o.features.capacity, Some(512));
        let err = toml::from_str::<LabelOptions>("dead_band = 0.1\ndead_band_bps = 3.0\n")
            .expect_err("both");
        assert!(
            err.to_string().contains(
                "labels: give either dead_band (price units) or dead_band_bps (basis points of the price), not both"
            ),
            "{err}"
        );
        let err = toml::from_str::<FeatureOptions>("tick = 0.1\n").expect_err("unknown");
        assert!(err.to_string().contains("unknown field `tick`"), "{err}");
    }

    #[test]
    fn input_options_fill_the_input_config_and_trades_store_nothing() {
        let o = DataOptions {
            features: FeatureOptions {
                tick_size: Some(1.0),
                size_unit: Some(0.00000001),
                session_gap_ms: Some(60_000),
                ..FeatureOptions::default()
            },
            input: InputOptions {
                input: Some(DataInput::Book),
                book_levels: Some(3),
                ignore_unknown_deletes: Some(true),
                book_trade_windows: Some(vec![10]),
                ..InputOptions::default()
            },
            ..DataOptions::default()
        };
        let input = o.config().input;
        assert_eq!(input.kind, DataInput::Book);
        assert_eq!(
            (input.market.tick_size, input.market.size_unit),
            (1.0, 0.00000001)
        );
        assert_eq!(input.market.book_session_gap_ms, 60_000);
        assert_eq!(
            input.market.bar_session_gap_ms,
            MarketConfig::default().bar_session_gap_ms
        );
        assert_eq!(input.market.book_trade_windows, [10]);
        assert_eq!(
            (input.book.levels, input.book.ignore_unknown_deletes),
            (3, true)
        );
        let opts = input.book.options(&input.market).expect("a valid grid");
        assert_eq!(opts.lot_size.to_string(), "0.00000001");
        let trades = DataOptions {
            input: InputOptions {
                book_levels: Some(3),
                ..InputOptions::default()
            },
            ..DataOptions::default()
        };
        assert!(trades.config().input.is_default());
    }
}
