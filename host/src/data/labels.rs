//! Labels: the direction of the price move over the next `horizon` trades, with a dead band.

use serde::{Deserialize, Serialize};

use super::csv::Trade;
use super::error::DataError;

/// Class names by label value: 0 = down, 1 = flat, 2 = up.
pub const LABEL_NAMES: [&str; 3] = ["down", "flat", "up"];

/// [`LABEL_NAMES`] as owned strings, the form [`Dataset::label_names`](super::Dataset::label_names) stores.
pub fn label_names() -> Vec<String> {
    LABEL_NAMES.iter().map(|s| (*s).to_owned()).collect()
}

/// How trades are labelled.
///
/// The label of trade `i` compares the price `horizon` trades later with its own:
/// `d = price[i + horizon] - price[i]`; up (2) if `d > dead_band`, down (0) if `d < -dead_band`, else flat (1).
///
/// The default (`horizon` 100 trades, `dead_band` 0.125 = half an ES tick, so any move of one tick or more
/// counts) gives roughly balanced classes on the bundled ES data: see `docs/DATA.md`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelConfig {
    /// Number of trades to look ahead (>= 1).
    pub horizon: usize,
    /// Half-width of the flat band, in price units (finite, >= 0).
    pub dead_band: f64,
}

impl Default for LabelConfig {
    fn default() -> Self {
        LabelConfig {
            horizon: 100,
            dead_band: 0.125,
        }
    }
}

impl LabelConfig {
    /// Checks `horizon` ([`crate::limits::HORIZON`]) and `dead_band` (finite and >= 0, [`crate::limits::DEAD_BAND`]).
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
        crate::limits::DEAD_BAND
            .check(self.dead_band)
            .map_err(|source| DataError::Setting {
                setting: "labels.dead_band",
                source,
            })?;
        Ok(())
    }

    /// The class of a price change `d = future - now`.
    #[inline]
    pub fn classify(&self, d: f64) -> u8 {
        if d > self.dead_band {
            2
        } else if d < -self.dead_band {
            0
        } else {
            1
        }
    }
}

/// The label of every trade, `None` where `i + horizon` runs past the end of the data.
///
/// This function knows nothing of sessions; [`build_dataset`](super::build_dataset) also drops the labels
/// whose horizon crosses a session break.
pub fn compute_labels(trades: &[Trade], cfg: &LabelConfig) -> Vec<Option<u8>> {
    trades
        .iter()
        .enumerate()
        .map(|(i, now)| {
            let future = i.checked_add(cfg.horizon).and_then(|j| trades.get(j))?;
            Some(cfg.classify(future.price - now.price))
        })
        .collect()
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

    #[test]
    fn hand_example() {
        // Horizon 2, dead band 0.125 on a 0.25 grid: any move of one tick or more leaves the band.
        let t = trades(&[100.0, 100.25, 100.25, 100.0, 99.75, 99.75, 100.0]);
        let cfg = LabelConfig {
            horizon: 2,
            dead_band: 0.125,
        };
        // d = +0.25, -0.25, -0.5, -0.25, +0.25, then no label.
        assert_eq!(
            compute_labels(&t, &cfg),
            [Some(2), Some(0), Some(0), Some(0), Some(2), None, None]
        );
        // With a dead band of one tick, only the -0.5 move leaves the band.
        let wide = LabelConfig {
            horizon: 2,
            dead_band: 0.25,
        };
        assert_eq!(
            compute_labels(&t, &wide),
            [Some(1), Some(1), Some(0), Some(1), Some(1), None, None]
        );
    }

    #[test]
    fn horizon_past_end_and_huge_horizon() {
        let t = trades(&[1.0, 2.0]);
        let cfg = LabelConfig {
            horizon: usize::MAX,
            dead_band: 0.0,
        };
        assert_eq!(compute_labels(&t, &cfg), [None, None]);
        assert!(compute_labels(&[], &LabelConfig::default()).is_empty());
    }

    #[test]
    fn validate_rejects_bad_values() {
        assert!(LabelConfig::default().validate().is_ok());
        for cfg in [
            LabelConfig {
                horizon: 0,
                dead_band: 0.1,
            },
            LabelConfig {
                horizon: 5,
                dead_band: -0.1,
            },
            LabelConfig {
                horizon: 5,
                dead_band: f64::NAN,
            },
        ] {
            assert!(
                matches!(cfg.validate(), Err(DataError::Setting { .. })),
                "{cfg:?}"
            );
        }
    }

    #[test]
    fn names() {
        assert_eq!(label_names(), ["down", "flat", "up"]);
    }
}
