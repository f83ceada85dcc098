//! Labels: the direction of the price move over the next `horizon` trades, with a dead band, and the warnings
//! that say when the classes they give are degenerate.
//!
//! The labels are computed on a plain price series with its session starts ([`label_prices`]), so any input kind
//! can reuse them (trade prices, bar closes, quote mids); [`compute_labels`] is the wrapper for trades.

use serde::{Deserialize, Serialize};

use super::csv::Trade;
use super::error::DataError;

/// Class names by label value: 0 = down, 1 = flat, 2 = up.
pub const LABEL_NAMES: [&str; 3] = ["down", "flat", "up"];

/// [`LABEL_NAMES`] as owned strings, the form [`Dataset::label_names`](super::Dataset::label_names) stores.
pub fn label_names() -> Vec<String> {
    LABEL_NAMES.iter().map(|s| (*s).to_owned()).collect()
}

/// The half-width of the flat band: in price units, or in basis points of the price at the label's start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DeadBand {
    /// A fixed band in price units (`dead_band` in a config file, `--dead-band` on the command line).
    Price(f64),
    /// A band of `bps * 1e-4 * p_t` around the price `p_t` (`dead_band_bps`, `--dead-band-bps`).
    Bps(f64),
}

impl DeadBand {
    /// The default: 1 basis point. On the bundled ES ticks (prices 1639 to 1649, one 0.25 tick is 1.52 to
    /// 1.53 bp) it leaves a move of one tick or more outside the band and keeps a zero move inside, exactly as
    /// the earlier absolute default of half a tick did, so the labels are unchanged; `docs/DATA.md` gives the
    /// class shares it and other bands give on ES ticks, FX and BTC hourly bars.
    pub const DEFAULT: DeadBand = DeadBand::Bps(DeadBand::DEFAULT_BPS);

    /// The basis points of [`DeadBand::DEFAULT`].
    pub const DEFAULT_BPS: f64 = 1.0;

    /// The band in price units around the price `now`.
    #[inline]
    pub fn width_at(&self, now: f64) -> f64 {
        match *self {
            DeadBand::Price(band) => band,
            DeadBand::Bps(bps) => bps * 1e-4 * now,
        }
    }
}

impl std::fmt::Display for DeadBand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeadBand::Price(band) => write!(f, "{band} (price units)"),
            DeadBand::Bps(bps) => write!(f, "{bps} bp"),
        }
    }
}

/// How trades are labelled.
///
/// The label of trade `i` compares the price `horizon` trades later with its own: with
/// `d = price[i + horizon] - price[i]` and `b` the [`DeadBand`] at `price[i]`, up (2) if `d > b`, down (0) if
/// `d < -b`, else flat (1).
///
/// The default (`horizon` 100 trades, a dead band of 1 basis point, under one ES tick, so any move of one tick
/// or more counts) gives roughly balanced classes on the bundled ES data: see `docs/DATA.md`.
///
/// In a config file or a checkpoint's `preprocess.json` it is a table with `horizon` and one of `dead_band`
/// (price units) or `dead_band_bps` (basis points); a checkpoint written before `dead_band_bps` existed has
/// `dead_band`, which keeps meaning the absolute band.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "LabelFields", into = "LabelFields")]
pub struct LabelConfig {
    /// Number of trades to look ahead (>= 1).
    pub horizon: usize,
    /// Half-width of the flat band (finite, >= 0).
    pub dead_band: DeadBand,
}

/// [`LabelConfig`] as serde reads and writes it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct LabelFields {
    horizon: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    dead_band: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dead_band_bps: Option<f64>,
}

impl Default for LabelFields {
    fn default() -> Self {
        LabelFields {
            horizon: LabelConfig::default().horizon,
            dead_band: None,
            dead_band_bps: None,
        }
    }
}

/// Both `dead_band` and `dead_band_bps` were given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "labels: give either dead_band (price units) or dead_band_bps (basis points of the price), not both"
)]
pub struct BothDeadBands;

impl TryFrom<LabelFields> for LabelConfig {
    type Error = BothDeadBands;

    fn try_from(f: LabelFields) -> Result<Self, BothDeadBands> {
        let dead_band = match (f.dead_band, f.dead_band_bps) {
            (Some(_), Some(_)) => return Err(BothDeadBands),
            (Some(p), None) => DeadBand::Price(p),
            (None, Some(b)) => DeadBand::Bps(b),
            (None, None) => DeadBand::DEFAULT,
        };
        Ok(LabelConfig {
            horizon: f.horizon,
            dead_band,
        })
    }
}

impl From<LabelConfig> for LabelFields {
    fn from(c: LabelConfig) -> Self {
        let (dead_band, dead_band_bps) = match c.dead_band {
            DeadBand::Price(p) => (Some(p), None),
            DeadBand::Bps(b) => (None, Some(b)),
        };
        LabelFields {
            horizon: c.horizon,
            dead_band,
            dead_band_bps,
        }
    }
}

impl Default for LabelConfig {
    fn default() -> Self {
        LabelConfig {
            horizon: 100,
            dead_band: DeadBand::DEFAULT,
        }
    }
}

impl LabelConfig {
    /// Checks `horizon` ([`crate::limits::HORIZON`]) and the dead band (finite and >= 0,
    /// [`crate::limits::DEAD_BAND`], named `labels.dead_band` or `labels.dead_band_bps`).
    ///
    /// # Errors
    ///
    /// [`DataError::Setting`] naming the bad field, its value and its range.
    pub fn validate(&self) -> Result<(), DataError> {
        crate::limits::HORIZON
            .check_usize(self.horizon)
            .map_err(|source| DataError::Setting {
                setting: "labels.horizon",
                source,
            })?;
        let (setting, value) = match self.dead_band {
            DeadBand::Price(p) => ("labels.dead_band", p),
            DeadBand::Bps(b) => ("labels.dead_band_bps", b),
        };
        crate::limits::DEAD_BAND
            .check(value)
            .map_err(|source| DataError::Setting { setting, source })?;
        Ok(())
    }

    /// The class of a move from the price `now` to the price `future`: flat when
    /// `|future - now| <= band`, with the band at `now`.
    #[inline]
    pub fn classify(&self, now: f64, future: f64) -> u8 {
        let d = future - now;
        let band = self.dead_band.width_at(now);
        if d > band {
            2
        } else if d < -band {
            0
        } else {
            1
        }
    }
}

/// The label of every point of a price series, `None` where `i + horizon` runs past the end of the series or
/// into the next session.
///
/// `session_starts` lists the first index of each session in ascending order (an empty list, or one without 0,
/// is read as if 0 were in it); a label never reaches across a session start, since the move across a break is
/// not something the features could see coming. `prices` are trade prices, bar closes or quote mids.
pub fn label_prices(
    prices: &[f64],
    session_starts: &[usize],
    cfg: &LabelConfig,
) -> Vec<Option<u8>> {
    let n = prices.len();
    let mut ends = session_starts.iter().copied().filter(|&s| s > 0).chain([n]);
    let mut session_end = ends.next().unwrap_or(n);
    prices
        .iter()
        .enumerate()
        .map(|(i, &now)| {
            while i >= session_end {
                session_end = ends.next().unwrap_or(n);
            }
            let j = i.checked_add(cfg.horizon).filter(|&j| j < session_end)?;
            Some(cfg.classify(now, prices[j]))
        })
        .collect()
}

/// The label of every trade, `None` where `i + horizon` runs past the end of the data: [`label_prices`] over
/// the trade prices as one session.
///
/// This function knows nothing of sessions; [`build_dataset`](super::build_dataset) labels through
/// [`label_prices`] with the feature engine's session starts, so it drops the labels whose horizon crosses a
/// session break.
pub fn compute_labels(trades: &[Trade], cfg: &LabelConfig) -> Vec<Option<u8>> {
    let prices: Vec<f64> = trades.iter().map(|t| t.price).collect();
    label_prices(&prices, &[], cfg)
}

/// A majority class above this share of a split is warned about.
pub const MAJORITY_WARNING: f64 = 0.8;

/// A class whose share differs by more than this between training and test is warned about.
pub const SHIFT_WARNING: f64 = 0.1;

/// Something about the class shares of the splits that makes a model trained on them suspect. The labels are
/// still built; [`label_warnings`] finds these, `tickq train`, `tickq eval` and `tickq pipeline` print them and
/// the reports (`report.md`, `report.json`) list them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum LabelWarning {
    /// A class has no sample in a split.
    #[error("the {split} split has no `{class}` sample: class shares {shares}")]
    EmptyClass {
        /// `train`, `validation` or `test`.
        split: String,
        /// The class name.
        class: String,
        /// The split's class shares, as `down 40.0 %, flat 0.0 %, up 60.0 %`.
        shares: String,
    },
    /// One class holds more than [`MAJORITY_WARNING`] of a split.
    #[error(
        "the {split} split is {:.1} % `{class}` (more than 80 %): class shares {shares}; a model that always says `{class}` scores that",
        100.0 * share
    )]
    Majority {
        /// `train`, `validation` or `test`.
        split: String,
        /// The class name.
        class: String,
        /// Its share of the split, in [0, 1].
        share: f64,
        /// The split's class shares.
        shares: String,
    },
    /// A class's share differs by more than [`SHIFT_WARNING`] between the training and the test split.
    #[error(
        "class `{class}` is {:.1} % of the train split but {:.1} % of the test split (more than 10 percentage points apart)",
        100.0 * train,
        100.0 * test
    )]
    Shift {
        /// The class name.
        class: String,
        /// Its share of the training split.
        train: f64,
        /// Its share of the test split.
        test: f64,
    },
}

/// The shares of `counts` as text: `down 40.0 %, flat 0.0 %, up 60.0 %`.
fn shares_text(names: &[String], shares: &[f64]) -> String {
    names
        .iter()
        .zip(shares)
        .map(|(n, s)| format!("{n} {:.1} %", 100.0 * s))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The share of each class among `labels` (0 for every class when there are none).
pub fn class_shares(labels: &[u8], classes: usize) -> Vec<f64> {
    let mut counts = vec![0usize; classes];
    for &y in labels {
        if let Some(c) = counts.get_mut(usize::from(y)) {
            *c += 1;
        }
    }
    let total = labels.len().max(1) as f64;
    counts.iter().map(|&c| c as f64 / total).collect()
}

/// The warnings about the class shares of the `splits` (each a split name and its labels, the training split
/// named `train` and the test split `test`) over the classes `names`: a class empty in a split, a class above
/// [`MAJORITY_WARNING`] of a split, and a class whose training and test shares differ by more than
/// [`SHIFT_WARNING`]. An empty split gives no warning of its own.
pub fn label_warnings(splits: &[(&str, &[u8])], names: &[String]) -> Vec<LabelWarning> {
    let mut warnings = Vec::new();
    let mut shares_of = Vec::new();
    for &(split, labels) in splits {
        let shares = class_shares(labels, names.len());
        if labels.is_empty() {
            continue;
        }
        let text = shares_text(names, &shares);
        for (class, &share) in names.iter().zip(&shares) {
            if share == 0.0 {
                warnings.push(LabelWarning::EmptyClass {
                    split: split.to_owned(),
                    class: class.clone(),
                    shares: text.clone(),
                });
            } else if share > MAJORITY_WARNING {
                warnings.push(LabelWarning::Majority {
                    split: split.to_owned(),
                    class: class.clone(),
                    share,
                    shares: text.clone(),
                });
            }
        }
        shares_of.push((split, shares));
    }
    let find = |name: &str| shares_of.iter().find(|(s, _)| *s == name).map(|(_, v)| v);
    if let (Some(train), Some(test)) = (find("train"), find("test")) {
        for ((class, &tr), &te) in names.iter().zip(train).zip(test) {
            if (tr - te).abs() > SHIFT_WARNING {
                warnings.push(LabelWarning::Shift {
                    class: class.clone(),
                    train: tr,
                    test: te,
                });
            }
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trades(prices: &[f64]) -> Vec<Trade> {
        prices
            .iter()
            .enumerate()
            .map(|(i, &price)| Trade {
                timestamp_ms: i as i64,
                price,
                size: 1.0,
                side: None,
            })
            .collect()
    }

    fn price_band(horizon: usize, band: f64) -> LabelConfig {
        LabelConfig {
            horizon,
            dead_band: DeadBand::Price(band),
        }
    }

    #[test]
    fn hand_example() {
        // Horizon 2, dead band 0.125 on a 0.25 grid: any move of one tick or more leaves the band.
        let t = trades(&[100.0, 100.25, 100.25, 100.0, 99.75, 99.75, 100.0]);
        // d = +0.25, -0.25, -0.5, -0.25, +0.25, then no label.
        assert_eq!(
            compute_labels(&t, &price_band(2, 0.125)),
            [Some(2), Some(0), Some(0), Some(0), Some(2), None, None]
        );
        // With a dead band of one tick, only the -0.5 move leaves the band.
        assert_eq!(
            compute_labels(&t, &price_band(2, 0.25)),
            [Some(1), Some(1), Some(0), Some(1), Some(1), None, None]
        );
    }

    #[test]
    fn bps_band_scales_with_the_price() {
        // 10 bp of 100 is 0.1, of 1000 is 1.0: the same 0.5 move is up at 100 and flat at 1000.
        let cfg = LabelConfig {
            horizon: 1,
            dead_band: DeadBand::Bps(10.0),
        };
        assert_eq!(cfg.classify(100.0, 100.5), 2);
        assert_eq!(cfg.classify(1000.0, 1000.5), 1);
        assert_eq!(cfg.classify(1000.0, 998.9), 0);
        // On the band's edge a move is flat: |d| <= band.
        let edge = LabelConfig {
            horizon: 1,
            dead_band: DeadBand::Bps(50.0),
        };
        assert_eq!(edge.classify(100.0, 100.5), 1);
    }

    #[test]
    fn default_band_keeps_one_es_tick_outside() {
        // One 0.25 tick at the bundled file's highest price (1649) is 1.516 bp: outside the 1 bp default.
        let cfg = LabelConfig::default();
        for p in [1639.0, 1649.0] {
            assert_eq!(cfg.classify(p, p + 0.25), 2);
            assert_eq!(cfg.classify(p, p - 0.25), 0);
            assert_eq!(cfg.classify(p, p), 1);
        }
    }

    #[test]
    fn labels_stop_at_session_starts() {
        let prices = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let cfg = price_band(2, 0.0);
        // Sessions 0..3 and 3..6: index 1 would read index 3, in the next session.
        assert_eq!(
            label_prices(&prices, &[0, 3], &cfg),
            [Some(2), None, None, Some(2), None, None]
        );
        // Without 0 in the list, and with an empty one.
        assert_eq!(
            label_prices(&prices, &[3], &cfg),
            label_prices(&prices, &[0, 3], &cfg)
        );
        assert_eq!(
            label_prices(&prices, &[], &cfg),
            [Some(2), Some(2), Some(2), Some(2), None, None]
        );
    }

    #[test]
    fn horizon_past_end_and_huge_horizon() {
        let t = trades(&[1.0, 2.0]);
        assert_eq!(
            compute_labels(&t, &price_band(usize::MAX, 0.0)),
            [None, None]
        );
        assert!(compute_labels(&[], &LabelConfig::default()).is_empty());
    }

    #[test]
    fn validate_rejects_bad_values() {
        assert!(LabelConfig::default().validate().is_ok());
        let cases = [
            (
                price_band(0, 0.1),
                "invalid configuration: labels.horizon: 0 is out of range: expected a whole number from 1 to 1000000000",
            ),
            (
                price_band(5, -0.1),
                "invalid configuration: labels.dead_band: -0.1 is out of range: expected a finite number >= 0",
            ),
            (
                price_band(5, f64::NAN),
                "invalid configuration: labels.dead_band: NaN is out of range: expected a finite number >= 0",
            ),
            (
                LabelConfig {
                    horizon: 5,
                    dead_band: DeadBand::Bps(-2.0),
                },
                "invalid configuration: labels.dead_band_bps: -2 is out of range: expected a finite number >= 0",
            ),
        ];
        for (cfg, message) in cases {
            let err = cfg.validate().expect_err("refused");
            assert!(matches!(err, DataError::Setting { .. }), "{cfg:?}");
            assert_eq!(err.to_string(), message);
        }
    }

    #[test]
    fn serde_reads_old_and_new_forms() {
        // An old checkpoint's `dead_band` is the absolute band.
        let old: LabelConfig = serde_json::from_str(r#"{"horizon":50,"dead_band":0.125}"#).unwrap();
        assert_eq!(old, price_band(50, 0.125));
        let new: LabelConfig =
            serde_json::from_str(r#"{"horizon":50,"dead_band_bps":2.5}"#).unwrap();
        assert_eq!(new.dead_band, DeadBand::Bps(2.5));
        // Absent keys keep the defaults.
        let empty: LabelConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, LabelConfig::default());
        // One representation round-trips each form.
        for cfg in [old, new, LabelConfig::default()] {
            let json = serde_json::to_string(&cfg).unwrap();
            assert_eq!(
                serde_json::from_str::<LabelConfig>(&json).unwrap(),
                cfg,
                "{json}"
            );
        }
        assert_eq!(
            serde_json::to_string(&LabelConfig::default()).unwrap(),
            r#"{"horizon":100,"dead_band_bps":1.0}"#
        );
        let both = serde_json::from_str::<LabelConfig>(
            r#"{"horizon":50,"dead_band":0.1,"dead_band_bps":2.5}"#,
        )
        .expect_err("both bands");
        assert_eq!(
            both.to_string(),
            "labels: give either dead_band (price units) or dead_band_bps (basis points of the price), not both"
        );
    }

    #[test]
    fn warnings_name_split_class_and_shares() {
        let names = label_names();
        // train: 9 flat of 10 (90 %), test: no `down`, flat 50 %, up 50 %.
        let train = [1, 1, 1, 1, 1, 1, 1, 1, 1, 0];
        let validation = [0, 1, 2];
        let test = [1, 2, 1, 2];
        let warnings = label_warnings(
            &[
                ("train", &train),
                ("validation", &validation),
                ("test", &test),
            ],
            &names,
        );
        let text: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "the train split is 90.0 % `flat` (more than 80 %): class shares down 10.0 %, flat 90.0 %, up 0.0 %; a model that always says `flat` scores that",
                "the train split has no `up` sample: class shares down 10.0 %, flat 90.0 %, up 0.0 %",
                "the test split has no `down` sample: class shares down 0.0 %, flat 50.0 %, up 50.0 %",
                "class `flat` is 90.0 % of the train split but 50.0 % of the test split (more than 10 percentage points apart)",
                "class `up` is 0.0 % of the train split but 50.0 % of the test split (more than 10 percentage points apart)",
            ]
        );
        // Balanced splits within 10 points give none.
        let even = [0, 1, 2, 0, 1, 2];
        assert!(label_warnings(&[("train", &even), ("test", &even)], &names).is_empty());
    }

    #[test]
    fn names() {
        assert_eq!(label_names(), ["down", "flat", "up"]);
    }
}
