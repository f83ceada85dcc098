//! Samples (windows of feature rows with a label) and the chronological train/validation/test split.

use std::ops::Range;

use ndarray::{Array2, s};
use serde::{Deserialize, Serialize};

use super::csv::Trade;
use super::error::DataError;
use super::features::{FeatureConfig, compute_features};
use super::labels::{LabelConfig, label_names, label_prices};
use super::market::InputConfig;
use crate::options::ReadOptions;

/// Everything [`build_dataset`] needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatasetConfig {
    /// Which features to compute.
    pub features: FeatureConfig,
    /// How to label each trade.
    pub labels: LabelConfig,
    /// Window length `T` in trades: 1 = the current trade's features only.
    pub time_steps: usize,
    /// How the data file is read (columns, time format and zone, delimiter, ...). Absent from configs and
    /// checkpoints written before it, and not written when it is the default, so their fingerprints stay.
    #[serde(skip_serializing_if = "ReadOptions::is_default")]
    pub read: ReadOptions,
    /// What the file holds (trades, bars, quotes, an order-by-order book) and that input's settings. Absent
    /// (trades) from configs and checkpoints written before it, and not written for trades with nothing else
    /// set, so their fingerprints stay.
    #[serde(skip_serializing_if = "InputConfig::is_default")]
    pub input: InputConfig,
}

impl Default for DatasetConfig {
    /// Default features and labels, `time_steps` = 1.
    fn default() -> Self {
        DatasetConfig {
            features: FeatureConfig::default(),
            labels: LabelConfig::default(),
            time_steps: 1,
            read: ReadOptions::default(),
            input: InputConfig::default(),
        }
    }
}

impl DatasetConfig {
    /// The names of the features the samples hold, in column order: the trade features, or the bar or book
    /// features of [`InputConfig::market`] (empty when those settings are invalid).
    pub fn feature_names(&self) -> Vec<String> {
        if self.input.kind == super::market::DataInput::Trades {
            return self.features.feature_names();
        }
        let mut names = Vec::new();
        if let Ok(spec) = self.input.market().to_spec() {
            spec.for_each_feature(|n| names.push(n.to_string()));
        }
        names
    }

    /// Validates the feature and label configurations and `time_steps` ([`crate::limits::TIME_STEPS`]).
    ///
    /// # Errors
    ///
    /// The errors of [`FeatureConfig::validate`], or [`DataError::Setting`] naming the bad field.
    pub fn validate(&self) -> Result<(), DataError> {
        self.features.validate()?;
        if self.input.kind != super::market::DataInput::Trades {
            self.input.market().checked_spec()?;
        }
        self.labels.validate()?;
        crate::limits::TIME_STEPS
            .check_usize(self.time_steps)
            .map_err(|source| DataError::Setting {
                setting: "time_steps",
                source,
            })?;
        Ok(())
    }
}

/// Labelled samples in time order.
///
/// Sample `n` ends at trade `tick_index[n]` = `i` and its input row `x[n]` holds the features of trades
/// `i-T+1..=i`, time-major: element `t*F + f` is feature `f` of trade `i-T+1+t`, so the last `F` values
/// are the current trade's.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// `[N, T*F]` model inputs, time-major.
    pub x: Array2<f32>,
    /// `N` labels: 0 = down, 1 = flat, 2 = up.
    pub y: Vec<u8>,
    /// `N` indices into the trade list: the trade each sample ends at (ascending).
    pub tick_index: Vec<usize>,
    /// The `F` feature names.
    pub feature_names: Vec<String>,
    /// The class names, `["down", "flat", "up"]`.
    pub label_names: Vec<String>,
    /// Window length `T`.
    pub time_steps: usize,
    /// Features per time step, `F`.
    pub features: usize,
    /// Label horizon `H` in trades: the label of a sample ending at trade `i` reads trade `i + H`.
    pub horizon: usize,
}

impl Dataset {
    /// Number of samples `N`.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// `true` when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Samples per class, indexed by label.
    pub fn class_counts(&self) -> [usize; 3] {
        let mut counts = [0usize; 3];
        for &y in &self.y {
            if let Some(c) = counts.get_mut(usize::from(y)) {
                *c += 1;
            }
        }
        counts
    }

    /// A copy of the samples in `range` (clamped to `0..len()`), with the same names and shapes.
    pub fn select(&self, range: Range<usize>) -> Dataset {
        let end = range.end.min(self.len());
        let start = range.start.min(end);
        Dataset {
            x: self.x.slice(s![start..end, ..]).to_owned(),
            y: self.y[start..end].to_vec(),
            tick_index: self.tick_index[start..end].to_vec(),
            feature_names: self.feature_names.clone(),
            label_names: self.label_names.clone(),
            time_steps: self.time_steps,
            features: self.features,
            horizon: self.horizon,
        }
    }
}

/// Builds the labelled samples from trades.
///
/// Trade `i` gives a sample when
/// - the `T` feature rows `i-T+1..=i` are all valid ([`Features::valid`](super::Features::valid)) and in one session,
/// - trade `i + H` exists and is in the same session as `i` (labels never span a session break).
///
/// # Errors
///
/// The errors of [`DatasetConfig::validate`] and [`compute_features`] (a trade off the price or size grid),
/// [`DataError::TooFewSamples`] when no sample remains, and [`DataError::Memory`] when the sample matrix would
/// not fit the memory available ([`crate::limits::check_memory`]).
pub fn build_dataset(trades: &[Trade], cfg: &DatasetConfig) -> Result<Dataset, DataError> {
    cfg.validate()?;
    let features = compute_features(trades, &cfg.features)?;
    let prices: Vec<f64> = trades.iter().map(|t| t.price).collect();
    let labels = label_prices(&prices, &features.session_starts, &cfg.labels);
    assemble(
        features,
        &labels,
        cfg.time_steps,
        cfg.labels.horizon,
        |n, sessions| samples_context(n, sessions, cfg),
    )
}

/// The samples of `features` with their `labels` (one per row): every row that ends a run of `time_steps`
/// valid rows of one session and whose label's horizon stays in that session, windowed as [`Dataset`] says.
///
/// `context(rows, sessions)` explains an empty result in [`DataError::TooFewSamples`].
///
/// # Errors
///
/// [`DataError::TooFewSamples`] when no sample remains, [`DataError::Memory`] when the matrix does not fit.
pub(super) fn assemble(
    features: super::features::Features,
    labels: &[Option<u8>],
    time_steps: usize,
    horizon: usize,
    context: impl FnOnce(usize, usize) -> String,
) -> Result<Dataset, DataError> {
    let f = features.feature_count();
    let t_steps = time_steps;
    let n = features.valid.len();

    let mut picked: Vec<(usize, u8)> = Vec::new();
    let mut session_ends = features.session_starts.iter().skip(1).copied().chain([n]);
    let mut session_end = session_ends.next().unwrap_or(n);
    // Length of the run of consecutive valid rows ending at `i` within the session.
    let mut run = 0usize;
    for (i, (&valid, &label)) in features.valid.iter().zip(labels).enumerate() {
        if i >= session_end {
            session_end = session_ends.next().unwrap_or(n);
            run = 0;
        }
        run = if valid { run + 1 } else { 0 };
        let label_inside = i.checked_add(horizon).is_some_and(|j| j < session_end);
        if let Some(y) = label
            && run >= t_steps
            && label_inside
        {
            picked.push((i, y));
        }
    }
    if picked.is_empty() {
        return Err(DataError::TooFewSamples {
            found: 0,
            needed: 1,
            context: context(n, features.session_starts.len()),
        });
    }

    let width = t_steps * f;
    // The matrix, then its split and standardized copies.
    let needed = (picked.len() as u64)
        .saturating_mul(width as u64)
        .saturating_mul(4 * 3);
    crate::limits::check_memory(needed, || {
        format!(
            "the sample matrix ({} samples x {t_steps} time steps x {f} features, with its split and standardized copies)",
            picked.len()
        )
    })?;
    let mut x = Array2::<f32>::zeros((picked.len(), width));
    for (mut row, &(i, _)) in x.rows_mut().into_iter().zip(&picked) {
        let window = features.values.slice(s![i + 1 - t_steps..=i, ..]);
        for (dst, src) in row.iter_mut().zip(window.iter()) {
            *dst = *src;
        }
    }
    Ok(Dataset {
        x,
        y: picked.iter().map(|&(_, y)| y).collect(),
        tick_index: picked.iter().map(|&(i, _)| i).collect(),
        feature_names: features.names,
        label_names: label_names(),
        time_steps: t_steps,
        features: f,
        horizon,
    })
}

/// How [`chronological_split`] cuts a data set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitConfig {
    /// Fraction of samples for training (the earliest), in `(0, 1)`.
    pub train: f64,
    /// Fraction for validation (after training); the test part is the rest, after validation.
    pub validation: f64,
    /// Samples dropped at each cut; must be at least `horizon + time_steps` of the data set,
    /// so no training label window reaches a validation input window, and likewise for validation and test.
    pub gap: usize,
}

impl Default for SplitConfig {
    /// 70 % train, 15 % validation, 15 % test, and the gap for the default [`DatasetConfig`]
    /// (`horizon + time_steps` = 101). For other data set settings use [`SplitConfig::for_dataset`].
    fn default() -> Self {
        let d = DatasetConfig::default();
        SplitConfig {
            train: 0.7,
            validation: 0.15,
            gap: d.labels.horizon + d.time_steps,
        }
    }
}

impl SplitConfig {
    /// Checks the fractions and that the gap is at least `horizon + time_steps`, so no label window of one part
    /// reaches an input window of the next.
    ///
    /// # Errors
    ///
    /// [`DataError::SplitFractions`] when the fractions are not finite, `train <= 0`, `validation <= 0`,
    /// `train + validation >= 1`,
    /// and [`DataError::SplitGap`] when `gap < horizon + time_steps`.
    pub fn validate(&self, horizon: usize, time_steps: usize) -> Result<(), DataError> {
        let (train, validation) = (self.train, self.validation);
        if !(train.is_finite() && validation.is_finite())
            || train <= 0.0
            || validation <= 0.0
            || train + validation >= 1.0
        {
            return Err(DataError::SplitFractions { train, validation });
        }
        let required = horizon.saturating_add(time_steps);
        if self.gap < required {
            return Err(DataError::SplitGap {
                gap: self.gap,
                required,
            });
        }
        Ok(())
    }

    /// The default fractions with the smallest safe gap for `ds`: `ds.horizon + ds.time_steps`.
    pub fn for_dataset(ds: &Dataset) -> Self {
        SplitConfig {
            gap: ds.horizon.saturating_add(ds.time_steps),
            ..SplitConfig::default()
        }
    }
}

/// The three chronological parts of a data set.
#[derive(Debug, Clone, PartialEq)]
pub struct Splits {
    /// The earliest samples.
    pub train: Dataset,
    /// The samples after the first gap.
    pub validation: Dataset,
    /// The samples after the second gap, the latest.
    pub test: Dataset,
}

/// Cuts `ds` into train, validation and test parts in time order, dropping `cfg.gap` samples at each cut.
///
/// With `N` samples, training takes `0..a` with `a = floor(N * train)`, validation takes `a + gap..b` with
/// `b = floor(N * (train + validation))`, and test takes `b + gap..N`.
///
/// # Errors
///
/// [`DataError::SplitFractions`] when the fractions are not finite, `train <= 0`, `validation <= 0`,
/// `train + validation >= 1`, or `gap < horizon + time_steps`;
/// [`DataError::TooFewSamples`] when a part would be empty.
pub fn chronological_split(ds: &Dataset, cfg: &SplitConfig) -> Result<Splits, DataError> {
    let [train, validation, test] = split_ranges(ds.len(), ds.horizon, ds.time_steps, cfg)?;
    Ok(Splits {
        train: ds.select(train),
        validation: ds.select(validation),
        test: ds.select(test),
    })
}

/// The error of a data set without a sample: `n` trades in `sessions` sessions gave none.
pub(crate) fn no_samples(n: usize, sessions: usize, cfg: &DatasetConfig) -> DataError {
    DataError::TooFewSamples {
        found: 0,
        needed: 1,
        context: samples_context(n, sessions, cfg),
    }
}

/// Why `n` trades in `sessions` sessions gave no sample with the settings `cfg`.
fn samples_context(n: usize, sessions: usize, cfg: &DatasetConfig) -> String {
    let (warm_trades, warm_ms) = cfg.features.warm_up();
    format!(
        "{n} trades in {sessions} session(s); each session needs {warm_trades} trades and {warm_ms} ms of warm-up, \
         then {} time steps and {} trades of label horizon; a gap of more than {} ms \
         between trades starts a session (set it with --session-gap-ms or session_gap_ms in \
         [data.features])",
        cfg.time_steps, cfg.labels.horizon, cfg.features.session_gap_ms
    )
}

/// The sample ranges of the train, validation and test parts of `n` samples of horizon `horizon` and window
/// `time_steps`: the boundaries of [`chronological_split`], for samples that are not in memory (the sample store).
///
/// # Errors
///
/// As [`chronological_split`].
pub fn split_ranges(
    n: usize,
    horizon: usize,
    time_steps: usize,
    cfg: &SplitConfig,
) -> Result<[Range<usize>; 3], DataError> {
    cfg.validate(horizon, time_steps)?;
    let (train, validation) = (cfg.train, cfg.validation);
    let a = (n as f64 * train).floor() as usize;
    let b = ((n as f64 * (train + validation)).floor() as usize).min(n);
    let val_start = a.saturating_add(cfg.gap);
    let test_start = b.saturating_add(cfg.gap);
    if a == 0 || val_start >= b || test_start >= n {
        // Each part needs one sample after its share is rounded down and the gaps are taken out.
        let smallest_share = (1.0 - train - validation).min(validation).min(train);
        let needed = cfg
            .gap
            .saturating_mul(2)
            .saturating_add(3)
            .max((3.0 / smallest_share).ceil() as usize);
        return Err(DataError::TooFewSamples {
            found: n,
            needed,
            context: format!(
                "splitting {train}/{validation}/rest with a gap of {} samples leaves an empty part",
                cfg.gap
            ),
        });
    }
    Ok([0..a, val_start..b, test_start..n])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DeadBand, compute_labels};

    /// A small feature set with short windows so tiny trade lists get samples.
    fn small_features() -> FeatureConfig {
        FeatureConfig {
            return_lags_trades: vec![1, 2],
            return_lags_ms: vec![1_000],
            flow_windows_trades: vec![3],
            flow_windows_ms: vec![],
            volatility_windows_trades: vec![],
            intensity_windows_ms: vec![],
            vwap_windows_trades: vec![],
            vwap_windows_ms: vec![],
            range_windows_trades: vec![3],
            session_gap_ms: 60_000,
            ..FeatureConfig::default()
        }
    }

    /// Trades every 500 ms on a zig-zag price path, with a session break after `break_after` trades.
    fn synthetic(n: usize, break_after: Option<usize>) -> Vec<Trade> {
        let mut t = 0i64;
        (0..n)
            .map(|i| {
                t += if Some(i) == break_after {
                    3_600_000
                } else {
                    500
                };
                let price = 100.0 + 0.25 * ((i * 7 % 11) as f64);
                Trade {
                    timestamp_ms: t,
                    price,
                    size: 1.0 + (i % 3) as f64,
                    side: None,
                }
            })
            .collect()
    }

    fn cfg(time_steps: usize, horizon: usize) -> DatasetConfig {
        DatasetConfig {
            features: small_features(),
            labels: LabelConfig {
                horizon,
                dead_band: DeadBand::Price(0.125),
            },
            time_steps,
            read: Default::default(),
            input: Default::default(),
        }
    }

    #[test]
    fn read_options_are_stored_and_old_configs_still_read() {
        // A config written before the read options (no `read` key) reads, and the default writes no `read` key,
        // so fingerprints over the serialized config do not change.
        let old = serde_json::to_string(&DatasetConfig::default()).unwrap();
        assert!(!old.contains("\"read\""), "{old}");
        let back: DatasetConfig = serde_json::from_str(&old).unwrap();
        assert_eq!(back, DatasetConfig::default());
        let cfg = DatasetConfig {
            read: ReadOptions {
                columns: Some("time=Time,price=Close".parse().unwrap()),
                time_format: Some("%Y-%m-%d %I-%p".parse().unwrap()),
                ..ReadOptions::default()
            },
            ..DatasetConfig::default()
        };
        let text = serde_json::to_string(&cfg).unwrap();
        assert!(
            text.contains(r#""read":{"columns":{"time":"Time","price":"Close"},"time_format":"%Y-%m-%d %I-%p"}"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<DatasetConfig>(&text).unwrap(), cfg);
    }

    #[test]
    fn windows_are_time_major_copies_of_feature_rows() {
        let trades = synthetic(40, None);
        let c = cfg(4, 3);
        let ds = build_dataset(&trades, &c).expect("dataset");
        let feats = compute_features(&trades, &c.features).expect("features");
        let f = feats.feature_count();
        assert_eq!(ds.features, f);
        assert_eq!(ds.x.ncols(), 4 * f);
        assert_eq!(ds.feature_names, feats.names);
        assert_eq!(ds.label_names, ["down", "flat", "up"]);
        let labels = compute_labels(&trades, &c.labels);
        for (n, &i) in ds.tick_index.iter().enumerate() {
            for t in 0..4 {
                for k in 0..f {
                    assert_eq!(ds.x[[n, t * f + k]], feats.values[[i + t - 3, k]]);
                }
            }
            assert_eq!(Some(ds.y[n]), labels[i]);
        }
        // Warm-up: 3 earlier trades (the flow and range windows) and 1000 ms -> row 3 is the first valid one,
        // then 3 more rows complete the window of 4: the first sample ends at trade 6.
        assert_eq!(feats.first_valid, 3);
        assert_eq!(ds.tick_index[0], 6);
        // The last label reads trade 39 = i + 3.
        assert_eq!(*ds.tick_index.last().expect("samples"), 36);
        assert_eq!(ds.len(), 31);
    }

    #[test]
    fn no_sample_spans_a_session_break() {
        let trades = synthetic(60, Some(30));
        let c = cfg(3, 4);
        let ds = build_dataset(&trades, &c).expect("dataset");
        let feats = compute_features(&trades, &c.features).expect("features");
        assert_eq!(feats.session_starts, [0, 30]);
        for &i in &ds.tick_index {
            let window_first = i + 1 - 3;
            let label_end = i + 4;
            let same = |j: usize| (j < 30) == (i < 30);
            assert!(same(window_first) && same(label_end), "sample at {i}");
        }
        // Session 1: first valid row 3, first sample 5, last 25 (25 + 4 = 29).
        // Session 2: first valid row 33, first sample 35, last 55.
        let expected: Vec<usize> = (5..=25).chain(35..=55).collect();
        assert_eq!(ds.tick_index, expected);
    }

    #[test]
    fn too_few_rows_and_bad_config() {
        let trades = synthetic(5, None);
        assert!(matches!(
            build_dataset(&trades, &cfg(4, 3)),
            Err(DataError::TooFewSamples { found: 0, .. })
        ));
        assert!(matches!(
            build_dataset(&[], &cfg(1, 1)),
            Err(DataError::TooFewSamples { .. })
        ));
        assert!(matches!(
            build_dataset(&trades, &cfg(0, 1)),
            Err(DataError::Setting {
                setting: "time_steps",
                ..
            })
        ));
        assert!(matches!(
            build_dataset(&trades, &cfg(1, 0)),
            Err(DataError::Setting {
                setting: "labels.horizon",
                ..
            })
        ));
        assert_eq!(
            build_dataset(&trades, &cfg(70_000, 1))
                .unwrap_err()
                .to_string(),
            "invalid configuration: time_steps: 70000 is out of range: expected a whole number from 1 to 65535"
        );
    }

    #[test]
    fn split_gap_keeps_label_windows_away_from_next_inputs() {
        let trades = synthetic(400, Some(200));
        let ds = build_dataset(&trades, &cfg(3, 5)).expect("dataset");
        let split_cfg = SplitConfig::for_dataset(&ds);
        assert_eq!(split_cfg.gap, 8);
        let sp = chronological_split(&ds, &split_cfg).expect("split");
        let n = ds.len();
        let a = (n as f64 * 0.7).floor() as usize;
        let b = (n as f64 * 0.85).floor() as usize;
        assert_eq!(sp.train.len(), a);
        assert_eq!(sp.validation.len(), b - a - 8);
        assert_eq!(sp.test.len(), n - b - 8);
        for (early, late) in [(&sp.train, &sp.validation), (&sp.validation, &sp.test)] {
            let last_label_tick = early.tick_index.last().expect("non-empty") + ds.horizon;
            let first_input_tick = late.tick_index[0] + 1 - ds.time_steps;
            assert!(
                last_label_tick < first_input_tick,
                "label window ends at {last_label_tick}, next inputs start at {first_input_tick}"
            );
        }
        // The parts are contiguous runs of the original samples.
        assert_eq!(sp.train.tick_index[..], ds.tick_index[..a]);
        assert_eq!(sp.validation.tick_index[..], ds.tick_index[a + 8..b]);
        assert_eq!(sp.test.x, ds.x.slice(s![b + 8.., ..]));
    }

    #[test]
    fn split_rejects_small_gap_bad_fractions_and_tiny_sets() {
        let trades = synthetic(400, None);
        let ds = build_dataset(&trades, &cfg(3, 5)).expect("dataset");
        let small_gap = SplitConfig {
            gap: 7,
            ..SplitConfig::for_dataset(&ds)
        };
        assert!(matches!(
            chronological_split(&ds, &small_gap),
            Err(DataError::SplitGap { .. })
        ));
        for (train, validation) in [(0.0, 0.1), (0.9, 0.1), (0.5, -0.1), (f64::NAN, 0.1)] {
            let c = SplitConfig {
                train,
                validation,
                gap: 8,
            };
            assert!(
                matches!(
                    chronological_split(&ds, &c),
                    Err(DataError::SplitFractions { .. })
                ),
                "{c:?}"
            );
        }
        let huge_gap = SplitConfig {
            gap: usize::MAX,
            ..SplitConfig::for_dataset(&ds)
        };
        assert!(matches!(
            chronological_split(&ds, &huge_gap),
            Err(DataError::TooFewSamples { .. })
        ));
        let tiny = ds.select(0..20);
        assert!(matches!(
            chronological_split(&tiny, &SplitConfig::for_dataset(&tiny)),
            Err(DataError::TooFewSamples { found: 20, .. })
        ));
    }

    #[test]
    fn default_split_gap_matches_default_dataset() {
        let d = DatasetConfig::default();
        assert_eq!(SplitConfig::default().gap, d.labels.horizon + d.time_steps);
        assert_eq!(d.time_steps, 1);
    }
}
