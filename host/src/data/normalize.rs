//! Per-feature standardization, fitted on the training part only.

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use super::dataset::Dataset;

/// Per-feature mean and standard deviation: `z = (x - mean[f]) / std[f]`.
///
/// There are `F` entries, shared by the `T` time steps of a window: column `c` of a `[N, T*F]` input
/// uses feature `c % F`. Serializes to JSON as `{"mean": [...], "std": [...]}`; other keys do not deserialize.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalizer {
    /// Mean of each feature over the fitted data.
    pub mean: Vec<f32>,
    /// Population standard deviation of each feature; 1 for a (near-)constant feature, never below `1e-6`.
    pub std: Vec<f32>,
}

impl Normalizer {
    /// The smallest standard deviation a normalizer holds: [`Normalizer::fit`] gives a feature whose standard
    /// deviation is below it a standard deviation of 1 instead, and a stored normalizer with a smaller one (zero,
    /// negative, tiny) is refused when a checkpoint is read (see [`crate::preprocess`]).
    pub const MIN_STD: f32 = 1e-6;

    /// Fits the mean and standard deviation of each feature over every sample and time step of `ds`.
    ///
    /// Sums run in `f64`. Non-finite values are skipped. A feature whose standard deviation is below `1e-6`
    /// (including one with no finite value) gets `std = 1`, so it maps to `x - mean` instead of blowing up.
    /// An empty data set gives mean 0 and std 1.
    pub fn fit(ds: &Dataset) -> Normalizer {
        let pass = |visit: &mut dyn FnMut(&[f32])| -> Result<(), std::convert::Infallible> {
            for row in ds.x.rows() {
                match row.as_slice() {
                    Some(r) => visit(r),
                    None => visit(&row.to_vec()),
                }
            }
            Ok(())
        };
        match Self::fit_rows(ds.features, pass) {
            Ok(n) => n,
            Err(never) => match never {},
        }
    }

    /// [`Normalizer::fit`] over rows that are not in memory: `pass` is called twice (the mean, then the variance)
    /// and hands every sample row (`T*F` values, time-major) to its visitor in the same order each time. The
    /// sums run in that order, so rows visited in the dataset's order give the same normalizer bit for bit.
    ///
    /// # Errors
    ///
    /// The first error of `pass`.
    pub fn fit_rows<E>(
        f: usize,
        mut pass: impl FnMut(&mut dyn FnMut(&[f32])) -> Result<(), E>,
    ) -> Result<Normalizer, E> {
        let mut count = vec![0u64; f];
        let mut sum = vec![0f64; f];
        if f > 0 {
            pass(&mut |row: &[f32]| {
                for (c, &v) in row.iter().enumerate() {
                    if v.is_finite() {
                        sum[c % f] += f64::from(v);
                        count[c % f] += 1;
                    }
                }
            })?;
        }
        let mean: Vec<f64> = sum
            .iter()
            .zip(&count)
            .map(|(&s, &n)| if n > 0 { s / n as f64 } else { 0.0 })
            .collect();
        let mut sq = vec![0f64; f];
        if f > 0 {
            pass(&mut |row: &[f32]| {
                for (c, &v) in row.iter().enumerate() {
                    if v.is_finite() {
                        let d = f64::from(v) - mean[c % f];
                        sq[c % f] += d * d;
                    }
                }
            })?;
        }
        let std = sq
            .iter()
            .zip(&count)
            .map(|(&s, &n)| {
                let sd = if n > 0 {
                    (s / n as f64).sqrt() as f32
                } else {
                    0.0
                };
                if sd.is_finite() && sd >= Self::MIN_STD {
                    sd
                } else {
                    1.0
                }
            })
            .collect();
        Ok(Normalizer {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std,
        })
    }

    /// Number of features `F`.
    pub fn features(&self) -> usize {
        self.mean.len()
    }

    /// Standardizes `x` (`[N, T*F]`, time-major) in place.
    ///
    /// # Panics
    ///
    /// When `x.ncols()` is not a multiple of [`Normalizer::features`], or the normalizer has no features
    /// while `x` has columns: the input was built with another feature set.
    pub fn apply(&self, x: &mut Array2<f32>) {
        let f = self.features();
        assert!(
            if f == 0 {
                x.ncols() == 0
            } else {
                x.ncols().is_multiple_of(f)
            },
            "normalizer has {f} features but the input has {} columns",
            x.ncols()
        );
        if f == 0 {
            return;
        }
        for mut row in x.rows_mut() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = (*v - self.mean[c % f]) / self.std[c % f];
            }
        }
    }

    /// A standardized copy of `x` (`[N, T*F]`, time-major).
    ///
    /// # Panics
    ///
    /// Under the same conditions as [`Normalizer::apply`].
    pub fn transform(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut out = x.to_owned();
        self.apply(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use ndarray::array;

    use super::super::{
        DatasetConfig, FeatureConfig, SplitConfig, Trade, build_dataset, chronological_split,
    };
    use super::*;

    fn dataset(x: Array2<f32>, time_steps: usize, features: usize) -> Dataset {
        let n = x.nrows();
        Dataset {
            x,
            y: vec![1; n],
            tick_index: (0..n).collect(),
            feature_names: (0..features).map(|f| format!("f{f}")).collect(),
            label_names: super::super::label_names(),
            time_steps,
            features,
            horizon: 1,
        }
    }

    #[test]
    fn fit_shares_statistics_across_time_steps() {
        // T = 2, F = 2: feature 0 sees 1, 3, 5, 7 and feature 1 sees 10 everywhere (constant).
        let x = array![[1.0f32, 10.0, 3.0, 10.0], [5.0, 10.0, 7.0, 10.0]];
        let norm = Normalizer::fit(&dataset(x.clone(), 2, 2));
        assert_eq!(norm.mean, [4.0, 10.0]);
        assert!((norm.std[0] - 5.0f32.sqrt()).abs() < 1e-6);
        assert_eq!(norm.std[1], 1.0, "a constant feature keeps unit scale");
        let z = norm.transform(x.view());
        let s = 5.0f32.sqrt();
        let expected = array![[-3.0 / s, 0.0, -1.0 / s, 0.0], [1.0 / s, 0.0, 3.0 / s, 0.0]];
        for (a, b) in z.iter().zip(expected.iter()) {
            assert!((a - b).abs() < 1e-6, "{z} vs {expected}");
        }
        let mut y = x.clone();
        norm.apply(&mut y);
        assert_eq!(y, z);
    }

    #[test]
    fn empty_and_non_finite() {
        let norm = Normalizer::fit(&dataset(Array2::zeros((0, 3)), 1, 3));
        assert_eq!(norm.mean, [0.0; 3]);
        assert_eq!(norm.std, [1.0; 3]);
        let x = array![[1.0f32, f32::NAN], [3.0, f32::INFINITY], [5.0, 2.0]];
        let norm = Normalizer::fit(&dataset(x, 1, 2));
        assert_eq!(norm.mean, [3.0, 2.0]);
        assert_eq!(norm.std[1], 1.0);
    }

    #[test]
    #[should_panic(expected = "normalizer has 2 features")]
    fn apply_rejects_mismatched_width() {
        let norm = Normalizer {
            mean: vec![0.0; 2],
            std: vec![1.0; 2],
        };
        norm.apply(&mut Array2::zeros((1, 3)));
    }

    #[test]
    fn json_round_trip() {
        let norm = Normalizer {
            mean: vec![0.5, -2.0],
            std: vec![1.25, 3.0],
        };
        let json = serde_json::to_string(&norm).expect("serialize");
        assert_eq!(json, r#"{"mean":[0.5,-2.0],"std":[1.25,3.0]}"#);
        let back: Normalizer = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, norm);
    }

    #[test]
    fn fitted_on_train_only() {
        // A price level shift in the second half: the train mean must not see it.
        let trades: Vec<Trade> = (0..600)
            .map(|i| Trade {
                timestamp_ms: i * 1000,
                price: if i < 450 { 100.0 } else { 200.0 } + 0.25 * ((i % 5) as f64),
                size: if i < 450 { 1.0 } else { 50.0 },
                side: None,
            })
            .collect();
        let cfg = DatasetConfig {
            features: FeatureConfig {
                return_lags_trades: vec![1],
                return_lags_ms: vec![],
                flow_windows_trades: vec![],
                flow_windows_ms: vec![],
                volatility_windows_trades: vec![],
                intensity_windows_ms: vec![],
                vwap_windows_trades: vec![],
                vwap_windows_ms: vec![],
                range_windows_trades: vec![],
                ..FeatureConfig::default()
            },
            labels: super::super::LabelConfig {
                horizon: 5,
                dead_band: super::super::DeadBand::Price(0.125),
            },
            time_steps: 2,
            read: Default::default(),
            input: Default::default(),
        };
        let ds = build_dataset(&trades, &cfg).expect("dataset");
        let splits = chronological_split(&ds, &SplitConfig::for_dataset(&ds)).expect("split");
        let norm = Normalizer::fit(&splits.train);
        let log_size = ds
            .feature_names
            .iter()
            .position(|n| n == "log_size")
            .expect("log_size feature");
        // Training ends before trade 450, where every size is 1: the fitted log size mean is ln 2 exactly.
        assert!(*splits.train.tick_index.last().expect("train") < 450);
        assert!((norm.mean[log_size] - 2.0f32.ln()).abs() < 1e-6);
        assert_eq!(norm.std[log_size], 1.0);
        let all = Normalizer::fit(&ds);
        assert!(
            all.mean[log_size] > 1.0,
            "the full data set sees the size 50 trades"
        );
    }
}
