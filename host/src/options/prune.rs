//! How a model is pruned: [`PruneOptions`], for `tickq prune` and the pipeline's `prune` stages.

use serde::{Deserialize, Serialize};

#[cfg(feature = "cli")]
use super::cli::{ranged, ranged_default, real as real_arg, whole as whole_arg, whole_u64};
use super::{NumericFields, OptionError, TrainOptions, real, whole};
use crate::limits;
use crate::prune::{Norm, PolynomialSchedule, PruneMethod, PruningPlan};
use crate::train::TrainConfig;

/// The structured dimension when none is given: output channels.
pub const DEFAULT_DIM: usize = 0;
/// N:M's weights kept per group when none is given.
pub const DEFAULT_N: usize = 2;
/// N:M's group size when none is given.
pub const DEFAULT_M: usize = 4;
/// A gradual schedule's steps when none is given.
pub const DEFAULT_STEPS: usize = 4;
/// Fine-tuning epochs per step of a gradual schedule when none is given (a one-shot schedule has none).
pub const DEFAULT_GRADUAL_FINE_TUNE_EPOCHS: usize = 2;

crate::choice! {
    /// The pruning method, as a setting names it.
    pub enum PruneMethodName {
        /// L1 magnitude, ranked per layer
        Unstructured = "unstructured",
        /// L1 magnitude with one threshold across all dense and conv1d layers
        Global = "global",
        /// Remove whole channels or neurons ranked by the norm; the model shrinks
        Structured = "structured",
        /// N:M: keep the n largest of every m consecutive input weights
        Nm = "nm" | "n:m",
    }
}

crate::choice! {
    /// How the sparsity grows.
    pub enum ScheduleName {
        /// Prune to the amount in one step
        OneShot = "one-shot" | "one_shot",
        /// Polynomial decay from the initial sparsity to the amount over the steps, fine-tuning after each
        Gradual = "gradual",
    }
}

/// The pruning settings a user gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct PruneOptions {
    /// The pruning method.
    #[cfg_attr(feature = "cli", arg(long, value_enum, ignore_case = true))]
    pub method: PruneMethodName,
    /// The target sparsity in `[0, 1)` (the final one for a gradual schedule); not used by nm.
    #[cfg_attr(feature = "cli", arg(long,
        required_if_eq_any([("method", "unstructured"), ("method", "global"), ("method", "structured")]),
        allow_negative_numbers = true, value_parser = real_arg(limits::SPARSITY),
        help = ranged("Target: the fraction of weights that are zero afterwards, counting earlier pruning \
                       (unstructured per layer, global over all layers), or the fraction of each layer's channels \
                       removed (structured); the final sparsity with --schedule gradual. Not used by nm",
                      limits::SPARSITY)))]
    pub amount: Option<f32>,
    /// Layer names (default: every dense and conv1d layer; structured: every layer that can lose channels along
    /// `dim`). Global pruning always ranks all layers together.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_delimiter = ',', value_name = "NAMES")
    )]
    pub layers: Option<Vec<String>>,
    /// Structured: 0 removes output channels, 1 input channels (default 0).
    #[cfg_attr(feature = "cli", arg(long, allow_negative_numbers = true,
        value_parser = whole_arg(limits::STRUCTURED_DIM),
        help = ranged_default("Structured: 0 removes output channels (neurons) of the named layers and the next \
                               layer's matching inputs; 1 removes their input channels and the previous layer's \
                               matching outputs", DEFAULT_DIM, limits::STRUCTURED_DIM)))]
    pub dim: Option<usize>,
    /// Structured: the norm that ranks channels, `1`, `2` or `inf` (default 1).
    #[cfg_attr(feature = "cli", arg(long, help = format!(
        "Structured: the norm that ranks channels: 1, 2 or inf [default: {}]", Norm::L1)))]
    #[serde(default, with = "norm_value")]
    pub norm: Option<Norm>,
    /// N:M: weights kept per group, at most `m` (default 2).
    #[cfg_attr(feature = "cli", arg(long, allow_negative_numbers = true, value_parser = whole_arg(limits::NM),
        help = ranged_default("N:M: weights kept in each group, at most --m", DEFAULT_N, limits::NM)))]
    pub n: Option<usize>,
    /// N:M: group size, in consecutive inputs of a row (default 4).
    #[cfg_attr(feature = "cli", arg(long, allow_negative_numbers = true, value_parser = whole_arg(limits::NM),
        help = ranged_default("N:M: group size, in consecutive inputs of a row (conv1d rows are tap-major: the \
                               inputs of tap 0, then those of tap 1, ...)", DEFAULT_M, limits::NM)))]
    pub m: Option<usize>,
    /// `one-shot` (default) or `gradual`: Zhu & Gupta's `s_t = s_f + (s_i - s_f)(1 - t/N)^3`.
    #[cfg_attr(feature = "cli", arg(long, value_enum, ignore_case = true, help = format!(
        "one-shot, or gradual: Zhu & Gupta's s_t = s_f + (s_i - s_f)(1 - t/N)^3 from --initial (s_i) to --amount \
         (s_f) [default: {}]", ScheduleName::OneShot)))]
    pub schedule: Option<ScheduleName>,
    /// Gradual: the initial sparsity, at most `amount` (default 0).
    #[cfg_attr(feature = "cli", arg(long, allow_negative_numbers = true, value_parser = real_arg(limits::SPARSITY),
        help = ranged_default("Gradual: the initial sparsity s_i, at most --amount", 0, limits::SPARSITY)))]
    pub initial: Option<f32>,
    /// Gradual: the number of pruning steps (default 4).
    #[cfg_attr(feature = "cli", arg(long, allow_negative_numbers = true,
        value_parser = whole_arg(limits::PRUNE_STEPS),
        help = ranged_default("Gradual: the number of pruning steps N", DEFAULT_STEPS, limits::PRUNE_STEPS)))]
    pub steps: Option<usize>,
    /// Fine-tuning epochs after each step (default 2 when gradual, 0 otherwise).
    #[cfg_attr(feature = "cli", arg(long, value_name = "E", allow_negative_numbers = true,
        value_parser = whole_arg(limits::FINE_TUNE_EPOCHS),
        help = ranged(&format!("Fine-tuning epochs after each pruning step [default: \
                                {DEFAULT_GRADUAL_FINE_TUNE_EPOCHS} with --schedule gradual, 0 otherwise]"),
                      limits::FINE_TUNE_EPOCHS)))]
    pub fine_tune_epochs: Option<usize>,
    /// Fine-tuning learning rate, for the optimizer the model was trained with (default: its learning rate).
    #[cfg_attr(feature = "cli", arg(long, value_name = "LR", allow_negative_numbers = true,
        value_parser = real_arg(limits::LR),
        help = ranged("Fine-tuning learning rate, of the optimizer the model was trained with [default: its \
                       learning rate; 1e-3 (Adam) for a checkpoint]", limits::LR)))]
    pub lr: Option<f32>,
    /// Fine-tuning batch size (default: that of the model's training).
    #[cfg_attr(feature = "cli", arg(long, value_name = "N", allow_negative_numbers = true,
        value_parser = whole_arg(limits::BATCH_SIZE),
        help = ranged("Fine-tuning mini-batch size [default: that of the model's training; 256 for a \
                       checkpoint]", limits::BATCH_SIZE)))]
    pub batch_size: Option<usize>,
    /// Fine-tuning seed (default: that of the model's training).
    #[cfg_attr(feature = "cli", arg(long, allow_negative_numbers = true, value_parser = whole_u64(limits::SEED),
        help = ranged("Fine-tuning shuffling seed [default: that of the model's training; 7 for a checkpoint]",
                      limits::SEED)))]
    pub seed: Option<u64>,
}

impl PruneOptions {
    /// The numeric fields and their ranges.
    pub const NUMERIC: NumericFields = NumericFields {
        whole: &[
            ("dim", limits::STRUCTURED_DIM),
            ("n", limits::NM),
            ("m", limits::NM),
            ("steps", limits::PRUNE_STEPS),
            ("fine_tune_epochs", limits::FINE_TUNE_EPOCHS),
            ("batch_size", limits::BATCH_SIZE),
            ("seed", limits::SEED),
        ],
        real: &[
            ("amount", limits::SPARSITY),
            ("initial", limits::SPARSITY),
            ("lr", limits::LR),
        ],
    };

    /// The plan these settings describe. Its fine-tunes keep `upstream`, the settings the pruned model was trained
    /// with ([`TrainConfig::default`] when they are not known, as for a checkpoint), except for the epochs and
    /// what is set here (learning rate, batch size, seed).
    ///
    /// # Errors
    ///
    /// [`OptionError::Range`], [`OptionError::Missing`] (no amount), [`OptionError::NAboveM`] or
    /// [`OptionError::Schedule`].
    pub fn plan(&self, upstream: Option<&TrainConfig>) -> Result<PruningPlan, OptionError> {
        let amount = real("amount", limits::SPARSITY, self.amount)?;
        let initial = real("initial", limits::SPARSITY, self.initial)?;
        let dim = whole("dim", limits::STRUCTURED_DIM, self.dim)?;
        let n = whole("n", limits::NM, self.n)?;
        let m = whole("m", limits::NM, self.m)?;
        let steps = whole("steps", limits::PRUNE_STEPS, self.steps)?;
        let fine_tune_epochs = whole(
            "fine_tune_epochs",
            limits::FINE_TUNE_EPOCHS,
            self.fine_tune_epochs,
        )?;
        let layers = self.layers.clone();
        let method = match self.method {
            PruneMethodName::Unstructured => PruneMethod::Unstructured { layers },
            PruneMethodName::Global => PruneMethod::Global,
            PruneMethodName::Structured => PruneMethod::Structured {
                layers,
                dim: dim.unwrap_or(DEFAULT_DIM),
                norm: self.norm.unwrap_or(Norm::L1),
            },
            PruneMethodName::Nm => {
                let (n, m) = (n.unwrap_or(DEFAULT_N), m.unwrap_or(DEFAULT_M));
                if n > m {
                    return Err(OptionError::NAboveM { n, m });
                }
                PruneMethod::NM { n, m, layers }
            }
        };
        let amount = match (self.method, amount) {
            (PruneMethodName::Nm, _) => 0.0,
            (_, Some(a)) => a,
            (method, None) => {
                return Err(OptionError::Missing {
                    field: "amount",
                    why: format!("the {method} method needs a target in [0, 1)"),
                });
            }
        };
        let gradual = self.schedule == Some(ScheduleName::Gradual);
        let schedule = if gradual {
            PolynomialSchedule::new(
                initial.unwrap_or(0.0),
                amount,
                steps.unwrap_or(DEFAULT_STEPS),
            )
        } else {
            PolynomialSchedule::one_shot(amount)
        }
        .map_err(OptionError::Schedule)?;
        let epochs = fine_tune_epochs.unwrap_or(if gradual {
            DEFAULT_GRADUAL_FINE_TUNE_EPOCHS
        } else {
            0
        });
        let base = TrainConfig {
            epochs,
            checkpoint_dir: None,
            ..upstream.cloned().unwrap_or_default()
        };
        let fine_tune = TrainOptions {
            lr: self.lr,
            batch_size: self.batch_size,
            seed: self.seed,
            ..TrainOptions::default()
        }
        .overlay(base)?;
        Ok(PruningPlan {
            method,
            schedule,
            fine_tune,
        })
    }
}

/// A norm written as a number (`1`, `2`) or a string (`"inf"`, `"l2"`), kept as its name.
mod norm_value {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    use crate::prune::Norm;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Number(i64),
        Text(String),
    }

    pub(super) fn serialize<S: Serializer>(value: &Option<Norm>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(norm) => s.collect_str(norm),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Norm>, D::Error> {
        let text = match Written::deserialize(d)? {
            Written::Number(n) => n.to_string(),
            Written::Text(t) => t,
        };
        text.parse().map(Some).map_err(D::Error::custom)
    }
}
