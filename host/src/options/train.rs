//! How a model is trained: [`TrainOptions`] for every run that trains (a fresh model, a distilled student, a
//! pruned model's fine-tunes) and [`DistillOptions`] for the soft-target loss.

use serde::{Deserialize, Serialize};

#[cfg(feature = "cli")]
use super::cli::{ranged, ranged_default, real as real_arg, whole as whole_arg, whole_u64};
use super::{NumericFields, OptionError, real, whole};
use crate::distill::DistillConfig;
use crate::limits;
use crate::model::OptimizerConfig;
use crate::model::{DEFAULT_ADAM_LR, DEFAULT_SGD_LR, DEFAULT_SGD_MOMENTUM};
use crate::train::{ClassWeights, TrainConfig};

crate::choice! {
    /// The optimizer of a training run.
    pub enum OptimizerKind {
        /// Adam (lr 1e-3 unless set)
        Adam = "adam",
        /// SGD with heavy-ball momentum (lr 1e-2 and momentum 0.9 unless set)
        Sgd = "sgd",
    }
}

crate::choice! {
    /// How the cross-entropy weights the classes, as a setting names it.
    pub enum ClassWeighting {
        /// Every sample counts the same
        None = "none",
        /// Each class weighted by the inverse of its frequency in the training split
        Balanced = "balanced",
    }
}

impl From<ClassWeighting> for ClassWeights {
    fn from(w: ClassWeighting) -> Self {
        match w {
            ClassWeighting::None => ClassWeights::None,
            ClassWeighting::Balanced => ClassWeights::Balanced,
        }
    }
}

/// The training settings a user may set; what is absent keeps the value of the run they apply to
/// ([`TrainConfig::default`] for a fresh model, the trained model's settings for a pruning fine-tune).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct TrainOptions {
    /// Maximum number of epochs.
    #[cfg_attr(feature = "cli", arg(long, value_name = "N", allow_negative_numbers = true,
        value_parser = whole_arg(limits::EPOCHS),
        help = ranged_default("Maximum number of epochs", TrainConfig::default().epochs, limits::EPOCHS)))]
    pub epochs: Option<usize>,
    /// Mini-batch size.
    #[cfg_attr(feature = "cli", arg(long, value_name = "N", allow_negative_numbers = true,
        value_parser = whole_arg(limits::BATCH_SIZE),
        help = ranged_default("Mini-batch size", TrainConfig::default().batch_size, limits::BATCH_SIZE)))]
    pub batch_size: Option<usize>,
    /// The optimizer (default adam).
    #[cfg_attr(feature = "cli", arg(long, value_enum, ignore_case = true,
        help = format!("Optimizer [default: {}]", OptimizerKind::Adam)))]
    pub optimizer: Option<OptimizerKind>,
    /// Learning rate (default 1e-3 with Adam, 1e-2 with SGD).
    #[cfg_attr(feature = "cli", arg(long, value_name = "LR", allow_negative_numbers = true,
        value_parser = real_arg(limits::LR),
        help = ranged(&format!("Learning rate [default: {DEFAULT_ADAM_LR:e} for Adam, {DEFAULT_SGD_LR:e} for SGD]"), limits::LR)))]
    pub lr: Option<f32>,
    /// SGD momentum (default 0.9); only with the sgd optimizer.
    #[cfg_attr(feature = "cli", arg(long, allow_negative_numbers = true,
        value_parser = real_arg(limits::MOMENTUM),
        help = ranged_default("SGD momentum, with --optimizer sgd", DEFAULT_SGD_MOMENTUM, limits::MOMENTUM)))]
    pub momentum: Option<f32>,
    /// Early stopping: epochs without a lower validation loss before stopping (0 never stops early).
    #[cfg_attr(feature = "cli", arg(long, value_name = "EPOCHS", allow_negative_numbers = true,
        value_parser = whole_arg(limits::PATIENCE),
        help = ranged_default("Early stopping: epochs without a better validation loss before stopping (0: never)",
            TrainConfig::default().patience, limits::PATIENCE)))]
    pub patience: Option<usize>,
    /// Seed of initialization and shuffling; the same seed gives identical weights.
    #[cfg_attr(feature = "cli", arg(long, allow_negative_numbers = true,
        value_parser = whole_u64(limits::SEED),
        help = ranged_default("Seed for initialization and shuffling; the same seed gives identical weights",
            TrainConfig::default().seed, limits::SEED)))]
    pub seed: Option<u64>,
    /// Class weights in the cross-entropy loss (default none).
    #[cfg_attr(feature = "cli", arg(long, value_enum, ignore_case = true,
        help = format!("Class weights in the cross-entropy loss [default: {}]", ClassWeighting::None)))]
    pub class_weights: Option<ClassWeighting>,
    /// Shuffle the training set every epoch (default true).
    #[cfg_attr(feature = "cli", arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
        default_missing_value = "true",
        help = format!("Shuffle the training set every epoch (--shuffle=false: batches follow the data order) [default: {}]",
            TrainConfig::default().shuffle)))]
    pub shuffle: Option<bool>,
}

impl TrainOptions {
    /// The numeric fields and their ranges.
    pub const NUMERIC: NumericFields = NumericFields {
        whole: &[
            ("epochs", limits::EPOCHS),
            ("batch_size", limits::BATCH_SIZE),
            ("patience", limits::PATIENCE),
            ("seed", limits::SEED),
        ],
        real: &[("lr", limits::LR), ("momentum", limits::MOMENTUM)],
    };

    /// `base` with the fields that are set. Choosing an optimizer starts it from its defaults (Adam lr 1e-3; SGD
    /// lr 1e-2, momentum 0.9) before `lr` and `momentum`; without one, `lr` (and `momentum`, for SGD) change
    /// `base`'s optimizer.
    ///
    /// # Errors
    ///
    /// [`OptionError::Range`] for a value outside its range, [`OptionError::NeedsOther`] for a momentum without
    /// SGD, and [`OptionError::Train`] when [`TrainConfig::validate`] refuses the result.
    pub fn apply(&self, base: TrainConfig) -> Result<TrainConfig, OptionError> {
        let config = self.overlay(base)?;
        config.validate()?;
        Ok(config)
    }

    /// [`TrainOptions::apply`] without [`TrainConfig::validate`], for a pruning fine-tune, whose 0 epochs mean
    /// no fine-tuning.
    pub(crate) fn overlay(&self, base: TrainConfig) -> Result<TrainConfig, OptionError> {
        let mut config = base;
        if let Some(epochs) = whole("epochs", limits::EPOCHS, self.epochs)? {
            config.epochs = epochs;
        }
        if let Some(batch_size) = whole("batch_size", limits::BATCH_SIZE, self.batch_size)? {
            config.batch_size = batch_size;
        }
        if let Some(patience) = whole("patience", limits::PATIENCE, self.patience)? {
            config.patience = patience;
        }
        if let Some(seed) = self.seed {
            config.seed = seed;
        }
        if let Some(shuffle) = self.shuffle {
            config.shuffle = shuffle;
        }
        if let Some(weights) = self.class_weights {
            config.class_weights = weights.into();
        }
        let new_lr = real("lr", limits::LR, self.lr)?;
        let new_momentum = real("momentum", limits::MOMENTUM, self.momentum)?;
        config.optimizer = match self.optimizer {
            Some(OptimizerKind::Sgd) => OptimizerConfig::sgd(
                new_lr.unwrap_or(DEFAULT_SGD_LR),
                new_momentum.unwrap_or(DEFAULT_SGD_MOMENTUM),
            ),
            Some(OptimizerKind::Adam) => OptimizerConfig::adam(new_lr.unwrap_or(DEFAULT_ADAM_LR)),
            None => config.optimizer,
        };
        match &mut config.optimizer {
            OptimizerConfig::Adam { .. } if new_momentum.is_some() => {
                return Err(OptionError::NeedsOther {
                    field: "momentum",
                    needs: "optimizer = sgd",
                    actual: "optimizer = adam".into(),
                });
            }
            OptimizerConfig::Adam { lr, .. } => *lr = new_lr.unwrap_or(*lr),
            OptimizerConfig::Sgd { lr, momentum, .. } => {
                *lr = new_lr.unwrap_or(*lr);
                *momentum = new_momentum.unwrap_or(*momentum);
            }
        }
        Ok(config)
    }
}

/// The soft-target loss of distillation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct DistillOptions {
    /// Softmax temperature `T` of the soft term (default 4).
    #[cfg_attr(feature = "cli", arg(long, allow_negative_numbers = true,
        value_parser = real_arg(limits::TEMPERATURE),
        help = ranged_default("Softmax temperature T of the soft term", DistillConfig::default().temperature,
            limits::TEMPERATURE)))]
    pub temperature: Option<f32>,
    /// Weight `alpha` of the soft term `T^2 * KL`; the cross-entropy on the labels gets `1 - alpha` (default 0.7).
    #[cfg_attr(feature = "cli", arg(long, allow_negative_numbers = true,
        value_parser = real_arg(limits::ALPHA),
        help = ranged_default("Weight alpha of the soft term T^2 * KL; the cross-entropy on the labels gets 1 - alpha",
            DistillConfig::default().alpha, limits::ALPHA)))]
    pub alpha: Option<f32>,
}

impl DistillOptions {
    /// The numeric fields and their ranges.
    pub const NUMERIC: NumericFields = NumericFields {
        whole: &[],
        real: &[
            ("temperature", limits::TEMPERATURE),
            ("alpha", limits::ALPHA),
        ],
    };

    /// [`DistillConfig::default`] with the fields that are set.
    ///
    /// # Errors
    ///
    /// [`OptionError::Distill`] for a temperature or alpha outside its range.
    pub fn config(&self) -> Result<DistillConfig, OptionError> {
        let defaults = DistillConfig::default();
        let config = DistillConfig {
            temperature: self.temperature.unwrap_or(defaults.temperature),
            alpha: self.alpha.unwrap_or(defaults.alpha),
        };
        config.validate().map_err(OptionError::Distill)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_optimizer_starts_from_its_defaults_and_lr_keeps_the_base_kind() {
        let sgd = TrainOptions {
            optimizer: Some(OptimizerKind::Sgd),
            ..TrainOptions::default()
        };
        assert_eq!(
            sgd.apply(TrainConfig::default()).unwrap().optimizer,
            OptimizerConfig::sgd(DEFAULT_SGD_LR, DEFAULT_SGD_MOMENTUM)
        );
        let lr = TrainOptions {
            lr: Some(0.5),
            ..TrainOptions::default()
        };
        let base = TrainConfig {
            optimizer: OptimizerConfig::sgd(0.1, 0.5),
            ..TrainConfig::default()
        };
        assert_eq!(
            lr.apply(base).unwrap().optimizer,
            OptimizerConfig::sgd(0.5, 0.5)
        );
        assert_eq!(
            TrainOptions::default()
                .apply(TrainConfig::default())
                .unwrap(),
            TrainConfig::default()
        );
    }

    #[test]
    fn a_momentum_without_sgd_and_a_bad_range_are_named() {
        let momentum = TrainOptions {
            momentum: Some(0.5),
            ..TrainOptions::default()
        };
        assert_eq!(
            momentum
                .apply(TrainConfig::default())
                .unwrap_err()
                .to_string(),
            "field `momentum`: only optimizer = sgd uses it (this run has optimizer = adam)"
        );
        let epochs = TrainOptions {
            epochs: Some(0),
            ..TrainOptions::default()
        };
        assert_eq!(
            epochs
                .apply(TrainConfig::default())
                .unwrap_err()
                .to_string(),
            "field `epochs`: 0 is out of range: expected a whole number from 1 to 1000000"
        );
    }

    #[test]
    fn names_parse_in_any_case_and_bad_ones_list_the_values() {
        assert_eq!("SGD".parse::<OptimizerKind>().unwrap(), OptimizerKind::Sgd);
        assert_eq!(
            "lion".parse::<OptimizerKind>().unwrap_err().to_string(),
            "`lion`; use adam or sgd"
        );
        let table: toml::Table = toml::from_str("class_weights = \"inverse\"").unwrap();
        let err = super::super::fields::part::<TrainOptions>(&table).unwrap_err();
        assert_eq!(
            super::super::fields::value_message(&err),
            "field `class_weights`: `inverse`; use none or balanced"
        );
    }
}
