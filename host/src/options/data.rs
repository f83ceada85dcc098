//! How samples are labelled: [`LabelOptions`], for `tickq train` and the pipeline's `[data.labels]`.

use serde::{Deserialize, Serialize};

#[cfg(feature = "cli")]
use super::cli::{ranged_default, real_f64 as real_f64_arg, whole as whole_arg};
use crate::data::LabelConfig;
#[cfg(feature = "cli")]
use crate::limits;

/// The label settings a user gives; what is absent keeps [`LabelConfig::default`]. Their ranges are checked with
/// the rest of the data settings ([`DatasetConfig::validate`](crate::data::DatasetConfig::validate)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct LabelOptions {
    /// Label horizon: the price move over the next `horizon` trades is classified (default 100).
    #[cfg_attr(feature = "cli", arg(long, value_name = "TRADES", allow_negative_numbers = true,
        value_parser = whole_arg(limits::HORIZON),
        help = ranged_default("Label horizon: the price move over the next H trades is classified",
            LabelConfig::default().horizon, limits::HORIZON)))]
    pub horizon: Option<usize>,
    /// Dead band in price units: moves within ±band are labelled flat (default 0.125).
    #[cfg_attr(feature = "cli", arg(long, value_name = "PRICE", allow_negative_numbers = true,
        value_parser = real_f64_arg(limits::DEAD_BAND),
        help = ranged_default("Dead band in price units: moves within +-band are labelled flat",
            LabelConfig::default().dead_band, limits::DEAD_BAND)))]
    pub dead_band: Option<f64>,
}

impl LabelOptions {
    /// `base` with the fields that are set.
    #[must_use]
    pub fn apply(&self, base: LabelConfig) -> LabelConfig {
        LabelConfig {
            horizon: self.horizon.unwrap_or(base.horizon),
            dead_band: self.dead_band.unwrap_or(base.dead_band),
        }
    }
}
