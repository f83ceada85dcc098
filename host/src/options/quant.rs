//! How a model is quantized: [`QuantOptions`] (PyTorch's `backend` / `dtype` plus tickq's calibration settings)
//! and [`EncodeChoice`] (the blob's weight format and the machine it is for).

use std::path::Path;

use serde::{Deserialize, Serialize};

#[cfg(feature = "cli")]
use super::cli::{ranged_default, real_f64 as real_f64_arg, whole as whole_arg};
use super::{NumericFields, OptionError, real_f64, whole};
use crate::limits;
use crate::quant::QuantError;
use crate::quant::config::{Backend, QuantConfig, QuantDtype};
use crate::quant::observer::ObserverKind;
use tickq_core::encode::{EncodeOptions, Target, WeightFormat};

/// The percentile observer's percentile when none is given.
pub const DEFAULT_PERCENTILE: f64 = 99.99;
/// The moving-average observer's averaging constant when none is given (PyTorch's).
pub const DEFAULT_AVERAGING_CONSTANT: f64 = 0.01;

crate::choice! {
    /// The calibration observer, as a setting names it (its parameters are separate fields).
    pub enum ObserverName {
        /// The smallest and largest values seen
        MinMax = "minmax" | "min-max" | "min_max",
        /// A moving average of each batch's min and max (--averaging-constant)
        MovingAverageMinMax = "moving_average_minmax" | "moving-average-minmax" | "moving_average",
        /// The 100 - p and p percentiles (--percentile)
        Percentile = "percentile",
        /// The shrink of the min-max range with the least squared error
        Mse = "mse",
        /// The clipping threshold with the least KL divergence (TensorRT's entropy calibration)
        Kl = "kl" | "entropy" | "kl_entropy" | "kl-entropy",
    }
}

/// The static-quantization settings of a `--quant-config` file, of `tickq quantize`'s options and of a
/// `quantize` stage.
///
/// ```toml
/// backend = "x86"          # "x86" (alias "fbgemm"), "arm" (alias "qnnpack") or "fpga"
/// dtype = "qint8"          # or "quint8"
/// reduce_range = false     # 7-bit activations, as fbgemm does
/// observer = "minmax"      # "minmax", "moving_average_minmax", "percentile", "mse" or "kl"
/// percentile = 99.99       # for observer = "percentile"
/// averaging_constant = 0.01  # for observer = "moving_average_minmax"
/// calibration_samples = 4096
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct QuantOptions {
    /// The backend the arithmetic is tuned for (default x86).
    #[cfg_attr(feature = "cli", arg(long, value_enum, ignore_case = true,
        help = format!("Backend [default: {}]", QuantConfig::default().backend)))]
    pub backend: Option<Backend>,
    /// The activation data type (default qint8; both are the same 256-level grid).
    #[cfg_attr(feature = "cli", arg(long, value_enum, ignore_case = true,
        help = format!("Activation dtype, the same 256-level grid either way [default: {}]", QuantConfig::default().dtype)))]
    pub dtype: Option<QuantDtype>,
    /// 7-bit activations (-64..=63), as fbgemm's `reduce_range` (default false).
    #[cfg_attr(feature = "cli", arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
        default_missing_value = "true"))]
    pub reduce_range: Option<bool>,
    /// The activation observer (default minmax; percentile when only `percentile` is given).
    #[cfg_attr(feature = "cli", arg(long, value_enum, ignore_case = true))]
    pub observer: Option<ObserverName>,
    /// The percentile observer's upper percentile (default 99.99).
    #[cfg_attr(feature = "cli", arg(long, allow_negative_numbers = true,
        value_parser = real_f64_arg(limits::PERCENTILE),
        help = ranged_default("Percentile of the percentile observer", DEFAULT_PERCENTILE, limits::PERCENTILE)))]
    pub percentile: Option<f64>,
    /// The moving-average observer's averaging constant (default 0.01).
    #[cfg_attr(feature = "cli", arg(long, allow_negative_numbers = true,
        value_parser = real_f64_arg(limits::AVERAGING_CONSTANT),
        help = ranged_default("Averaging constant of the moving-average observer", DEFAULT_AVERAGING_CONSTANT,
            limits::AVERAGING_CONSTANT)))]
    pub averaging_constant: Option<f64>,
    /// Training samples used for calibration (at most the training split).
    #[cfg_attr(feature = "cli", arg(long, value_name = "N", allow_negative_numbers = true,
        value_parser = whole_arg(limits::CALIBRATION_SAMPLES),
        help = ranged_default("Training samples used for calibration (at most the training split is used)",
            QuantConfig::default().calibration_samples, limits::CALIBRATION_SAMPLES)))]
    pub calibration_samples: Option<usize>,
}

impl QuantOptions {
    /// The numeric fields and their ranges.
    pub const NUMERIC: NumericFields = NumericFields {
        whole: &[("calibration_samples", limits::CALIBRATION_SAMPLES)],
        real: &[
            ("percentile", limits::PERCENTILE),
            ("averaging_constant", limits::AVERAGING_CONSTANT),
        ],
    };

    /// Fields set in `other` replace those of `self` (the command line over a config file).
    #[must_use]
    pub fn overridden_by(self, other: QuantOptions) -> QuantOptions {
        QuantOptions {
            backend: other.backend.or(self.backend),
            dtype: other.dtype.or(self.dtype),
            reduce_range: other.reduce_range.or(self.reduce_range),
            observer: other.observer.or(self.observer),
            percentile: other.percentile.or(self.percentile),
            averaging_constant: other.averaging_constant.or(self.averaging_constant),
            calibration_samples: other.calibration_samples.or(self.calibration_samples),
        }
    }

    /// Parses a TOML config.
    ///
    /// # Errors
    ///
    /// [`QuantError::ConfigSyntax`] for bad TOML, an unknown key or a wrong value.
    pub fn from_toml_str(text: &str) -> Result<Self, QuantError> {
        toml::from_str(text).map_err(|source| QuantError::ConfigSyntax {
            file: None,
            source: Box::new(source),
        })
    }

    /// Reads a TOML config file and checks its values, so the message names the file even when the command line
    /// overrides other fields later.
    ///
    /// # Errors
    ///
    /// [`QuantError::ConfigRead`], [`QuantError::ConfigSyntax`] or [`QuantError::Setting`], naming the file.
    pub fn load(path: &Path) -> Result<Self, QuantError> {
        let text = limits::read_text_limited(path, limits::MAX_CONFIG_BYTES, "a config file")
            .map_err(|source| QuantError::ConfigRead {
                path: path.to_path_buf(),
                source,
            })?;
        let options: QuantOptions =
            toml::from_str(&text).map_err(|source| QuantError::ConfigSyntax {
                file: Some(path.to_path_buf()),
                source: Box::new(source),
            })?;
        options.resolve().map_err(|source| QuantError::Setting {
            file: Some(path.to_path_buf()),
            source: Box::new(source),
        })?;
        Ok(options)
    }

    /// [`QuantConfig::default`] with the fields that are set.
    ///
    /// # Errors
    ///
    /// [`OptionError::Range`] for a value outside its range.
    pub fn resolve(&self) -> Result<QuantConfig, OptionError> {
        let defaults = QuantConfig::default();
        let percentile = real_f64("percentile", limits::PERCENTILE, self.percentile)?;
        let averaging_constant = real_f64(
            "averaging_constant",
            limits::AVERAGING_CONSTANT,
            self.averaging_constant,
        )?;
        let observer = match self.observer {
            None if percentile.is_some() => ObserverName::Percentile,
            None => ObserverName::MinMax,
            Some(name) => name,
        };
        let observer = match observer {
            ObserverName::MinMax => ObserverKind::MinMax,
            ObserverName::MovingAverageMinMax => ObserverKind::MovingAverageMinMax {
                averaging_constant: averaging_constant.unwrap_or(DEFAULT_AVERAGING_CONSTANT),
            },
            ObserverName::Percentile => ObserverKind::Percentile {
                percentile: percentile.unwrap_or(DEFAULT_PERCENTILE),
            },
            ObserverName::Mse => ObserverKind::Mse,
            ObserverName::Kl => ObserverKind::KlEntropy,
        };
        Ok(QuantConfig {
            backend: self.backend.unwrap_or(defaults.backend),
            dtype: self.dtype.unwrap_or(defaults.dtype),
            reduce_range: self.reduce_range.unwrap_or(defaults.reduce_range),
            observer,
            calibration_samples: whole(
                "calibration_samples",
                limits::CALIBRATION_SAMPLES,
                self.calibration_samples,
            )?
            .unwrap_or(defaults.calibration_samples),
        })
    }
}

/// The blob's weight format and the machine it is for, as `tickq quantize` and a `quantize` stage take them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct EncodeChoice {
    /// Weight encoding in the blob (default auto): auto (per layer, the fastest estimate on the target among
    /// formats smaller than its dense layout), dense (the target's dense layout: dense-dot on x86-64 and aarch64,
    /// dense-dsp for Cortex-M4 Dense layers, blocked otherwise), smallest (per layer, the fewest bytes), blocked
    /// (16-channel blocks of input pairs, format 0), dense-dot (16-channel blocks of 4-input groups, for vpdpbusd
    /// / vpmaddwd / sdot), dense-dsp (Dense layers for the Cortex-M4's SMLAD), sparse (by output channel), columns
    /// (Dense only, by input: skips inputs at their zero point, e.g. ReLU zeros), packed (columns with bit-packed
    /// entries: smallest, slower) or nm (N:4 semi-structured).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "auto|dense|smallest|blocked|dense-dot|dense-dsp|sparse|columns|packed|nm"
        )
    )]
    #[serde(default, with = "as_text")]
    pub weight_format: Option<WeightFormat>,
    /// The machine the blob is for: its dense layout, and what weight format auto counts as fast. Default: this
    /// machine (x86-64-v4 with AVX-512 VNNI, x86-64-v3 with AVX2, else x86-64; aarch64 on aarch64).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "x86-64-v4|x86-64-v3|x86-64|aarch64|cortex-m4|cortex-m0|riscv32"
        )
    )]
    #[serde(default, with = "as_text")]
    pub target: Option<Target>,
}

impl EncodeChoice {
    /// The encoder's options: [`WeightFormat::Auto`] and [`Target::native`] for what is not set.
    #[must_use]
    pub fn options(&self) -> EncodeOptions {
        EncodeOptions {
            weight_format: self.weight_format.unwrap_or(WeightFormat::Auto),
            target: self.target.unwrap_or_else(Target::native),
        }
    }
}

/// serde for the core's settings, which have `FromStr` and `Display` but no serde of their own (the core does
/// not depend on serde): written as their names.
mod as_text {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};
    use std::fmt::Display;
    use std::str::FromStr;

    pub(super) fn serialize<T: Display, S: Serializer>(
        value: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(d)?;
        text.parse()
            .map(Some)
            .map_err(|e| D::Error::custom(format!("`{}`: {e}", crate::limits::excerpt(&text))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_defaults_resolve_as_pytorch_names_them() {
        let options = QuantOptions::from_toml_str(
            "backend = \"fbgemm\"\ndtype = \"qint8\"\nreduce_range = true",
        )
        .unwrap();
        let c = options.resolve().unwrap();
        assert_eq!((c.backend, c.dtype), (Backend::X86, QuantDtype::QInt8));
        assert_eq!(c.activation_limits(), (-64, 63));
        let c = QuantOptions::from_toml_str(
            "backend = \"QNNPACK\"\ndtype = \"quint8\"\nobserver = \"kl\"",
        )
        .unwrap()
        .resolve()
        .unwrap();
        assert_eq!((c.backend, c.dtype), (Backend::Arm, QuantDtype::QUInt8));
        assert_eq!(c.observer, ObserverKind::KlEntropy);
        let c = QuantOptions::from_toml_str("percentile = 99.9")
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(c.observer, ObserverKind::Percentile { percentile: 99.9 });
        assert_eq!(
            QuantOptions::default().resolve().unwrap(),
            QuantConfig::default()
        );
    }

    #[test]
    fn bad_values_name_the_field_and_what_is_allowed() {
        let err = QuantOptions::from_toml_str("observer = \"median\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.lines()
                .next()
                .unwrap()
                .ends_with("`median`; use minmax, moving_average_minmax, percentile, mse or kl"),
            "{err}"
        );
        let err = QuantOptions::from_toml_str("percentile = 20.0")
            .unwrap()
            .resolve()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `percentile`: 20 is out of range: expected a number in [50, 100]"
        );
        let err = QuantOptions::from_toml_str("colour = \"red\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `colour`"), "{err}");
    }

    #[test]
    fn the_command_line_overrides_the_file() {
        let file = QuantOptions::from_toml_str("backend = \"arm\"\nobserver = \"mse\"").unwrap();
        let cli = QuantOptions {
            observer: Some(ObserverName::Kl),
            ..QuantOptions::default()
        };
        let c = file.overridden_by(cli).resolve().unwrap();
        assert_eq!(
            (c.backend, c.observer),
            (Backend::Arm, ObserverKind::KlEntropy)
        );
    }

    #[test]
    fn the_encode_choice_reads_the_core_names() {
        let table: toml::Table =
            toml::from_str("weight_format = \"dense-dot\"\ntarget = \"cortex-m4\"").unwrap();
        let choice: EncodeChoice = super::super::fields::part(&table).unwrap();
        assert_eq!(choice.weight_format, Some(WeightFormat::DenseDot));
        assert_eq!(choice.target, Some(Target::CortexM4));
        let table: toml::Table = toml::from_str("target = \"z80\"").unwrap();
        let err = super::super::fields::part::<EncodeChoice>(&table).unwrap_err();
        assert!(
            super::super::fields::value_message(&err)
                .starts_with("field `target`: `z80`: unknown target"),
            "{}",
            super::super::fields::value_message(&err)
        );
    }
}
