//! The quantization config: the `backend` / `dtype` shape that PyTorch users know,
//! plus tickq's calibration settings.
//!
//! ```toml
//! backend = "x86"          # "x86" (alias "fbgemm"), "arm" (alias "qnnpack") or "fpga"
//! dtype = "qint8"          # or "quint8"
//! reduce_range = false     # 7-bit activations, as fbgemm does
//! observer = "minmax"      # "minmax", "moving_average_minmax", "percentile", "mse" or "kl"
//! percentile = 99.99       # for observer = "percentile"
//! averaging_constant = 0.01  # for observer = "moving_average_minmax"
//! calibration_samples = 4096
//! ```

use std::path::Path;

use serde::Deserialize;

use super::QuantError;
use super::observer::ObserverKind;

/// Which deployment target the int8 arithmetic is tuned for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// x86 servers (PyTorch's `fbgemm` / `x86`); pairs with `reduce_range`.
    X86,
    /// Arm Cortex-M / Cortex-A (PyTorch's `qnnpack`).
    Arm,
    /// FPGA fabric: every activation and weight scale is a power of two, so
    /// every requantization multiplier is exactly 2^30 and the requantization
    /// is a pure rounding shift.
    Fpga,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::X86 => "x86",
            Self::Arm => "arm",
            Self::Fpga => "fpga",
        })
    }
}

/// The quantized data type of activations.
///
/// Both use 256 levels on the same affine grid: a `quint8` value `u` is the
/// `qint8` value `u - 128` with the zero point shifted by 128, so the blob
/// stores both as int8 and the results are identical.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantDtype {
    /// Signed int8 activations with an affine zero point in -128..=127.
    QInt8,
    /// Unsigned uint8 activations with an affine zero point in 0..=255.
    QUInt8,
}

impl std::fmt::Display for QuantDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::QInt8 => "qint8",
            Self::QUInt8 => "quint8",
        })
    }
}

/// Settings for static quantization.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantConfig {
    /// Target backend.
    pub backend: Backend,
    /// Activation data type.
    pub dtype: QuantDtype,
    /// Use 7-bit activations (-64..=63), so that the sum of two int8 × int8
    /// products cannot saturate a 16-bit intermediate (fbgemm's `reduce_range`).
    pub reduce_range: bool,
    /// How activation ranges are calibrated.
    pub observer: ObserverKind,
    /// How many samples of the training split are used for calibration.
    pub calibration_samples: usize,
}

impl Default for QuantConfig {
    fn default() -> Self {
        Self {
            backend: Backend::X86,
            dtype: QuantDtype::QInt8,
            reduce_range: false,
            observer: ObserverKind::default(),
            calibration_samples: 4096,
        }
    }
}

impl QuantConfig {
    /// The int8 values activations may take: -128..=127, or -64..=63 with
    /// `reduce_range`.
    pub fn activation_limits(&self) -> (i8, i8) {
        if self.reduce_range {
            (-64, 63)
        } else {
            (-128, 127)
        }
    }
}

/// The string-typed fields of a config, as a file or the command line gives them.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuantConfig {
    /// `x86`, `fbgemm`, `arm`, `qnnpack` or `fpga`.
    pub backend: Option<String>,
    /// `qint8` or `quint8`.
    pub dtype: Option<String>,
    /// 7-bit activations.
    pub reduce_range: Option<bool>,
    /// Observer name.
    pub observer: Option<String>,
    /// Percentile for the percentile observer.
    pub percentile: Option<f64>,
    /// Averaging constant of the moving-average observer.
    pub averaging_constant: Option<f64>,
    /// Calibration samples.
    pub calibration_samples: Option<usize>,
}

impl RawQuantConfig {
    /// Fields set in `other` replace those of `self`.
    pub fn overridden_by(self, other: RawQuantConfig) -> RawQuantConfig {
        RawQuantConfig {
            backend: other.backend.or(self.backend),
            dtype: other.dtype.or(self.dtype),
            reduce_range: other.reduce_range.or(self.reduce_range),
            observer: other.observer.or(self.observer),
            percentile: other.percentile.or(self.percentile),
            averaging_constant: other.averaging_constant.or(self.averaging_constant),
            calibration_samples: other.calibration_samples.or(self.calibration_samples),
        }
    }

    /// Reads a TOML config file and checks its values ([`RawQuantConfig::resolve`]).
    ///
    /// # Errors
    ///
    /// [`QuantError::Config`] naming the file and the bad field.
    pub fn load(path: &Path) -> Result<Self, QuantError> {
        let text = crate::limits::read_text_limited(
            path,
            crate::limits::MAX_CONFIG_BYTES,
            "a config file",
        )
        .map_err(|e| QuantError::Config(format!("{}: {e}", path.display())))?;
        let raw: RawQuantConfig = toml::from_str(&text).map_err(|e| {
            QuantError::Config(format!(
                "{}: {}",
                path.display(),
                crate::limits::toml_message(&e)
            ))
        })?;
        // The file's own values are checked here, so the message names the file even when the command line
        // overrides other fields later.
        match raw.resolve() {
            Ok(_) => Ok(raw),
            Err(QuantError::Config(m)) => {
                Err(QuantError::Config(format!("{}: {m}", path.display())))
            }
            Err(e) => Err(e),
        }
    }

    /// Checks every field and builds the config, rejecting what tickq cannot run.
    ///
    /// # Errors
    ///
    /// [`QuantError::Config`] naming the field, the value and what is supported.
    pub fn resolve(&self) -> Result<QuantConfig, QuantError> {
        let mut cfg = QuantConfig::default();
        if let Some(b) = &self.backend {
            cfg.backend = parse_backend(b)?;
        }
        if let Some(d) = &self.dtype {
            cfg.dtype = parse_dtype(d)?;
        }
        cfg.reduce_range = self.reduce_range.unwrap_or(false);
        let pct = crate::limits::PERCENTILE
            .check(self.percentile.unwrap_or(99.99))
            .map_err(|e| QuantError::Config(format!("percentile: {e} (for example 99.99)")))?;
        let c = crate::limits::AVERAGING_CONSTANT
            .check(self.averaging_constant.unwrap_or(0.01))
            .map_err(|e| {
                QuantError::Config(format!(
                    "averaging_constant: {e} (PyTorch's default is 0.01)"
                ))
            })?;
        cfg.observer = match self
            .observer
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None if self.percentile.is_some() => ObserverKind::Percentile { percentile: pct },
            None | Some("minmax" | "min-max" | "min_max") => ObserverKind::MinMax,
            Some("moving_average_minmax" | "moving-average-minmax" | "moving_average") => {
                ObserverKind::MovingAverageMinMax {
                    averaging_constant: c,
                }
            }
            Some("percentile") => ObserverKind::Percentile { percentile: pct },
            Some("mse") => ObserverKind::Mse,
            Some("kl" | "entropy" | "kl_entropy" | "kl-entropy") => ObserverKind::KlEntropy,
            Some(other) => {
                return Err(QuantError::Config(format!(
                    "observer = \"{}\" is not supported: use \"minmax\", \"moving_average_minmax\", \"percentile\", \"mse\" or \"kl\"",
                    crate::limits::excerpt(other)
                )));
            }
        };
        if let Some(n) = self.calibration_samples {
            cfg.calibration_samples = crate::limits::CALIBRATION_SAMPLES.check_usize(n).map_err(
                |e| {
                    QuantError::Config(format!(
                        "calibration_samples: {e} (at most the training split's samples are used)"
                    ))
                },
            )?;
        }
        Ok(cfg)
    }
}

impl QuantConfig {
    /// Parses a TOML config (see the module docs).
    ///
    /// # Errors
    ///
    /// [`QuantError::Config`] for unknown fields, bad types or unsupported values.
    pub fn from_toml_str(text: &str) -> Result<Self, QuantError> {
        let raw: RawQuantConfig = toml::from_str(text)
            .map_err(|e| QuantError::Config(crate::limits::toml_message(&e)))?;
        raw.resolve()
    }

    /// Reads and checks a TOML config file.
    ///
    /// # Errors
    ///
    /// [`QuantError::Config`] naming the file.
    pub fn load(path: &Path) -> Result<Self, QuantError> {
        RawQuantConfig::load(path)?.resolve()
    }
}

fn parse_backend(s: &str) -> Result<Backend, QuantError> {
    match s.to_ascii_lowercase().as_str() {
        "x86" | "fbgemm" | "onednn" => Ok(Backend::X86),
        "arm" | "qnnpack" => Ok(Backend::Arm),
        "fpga" => Ok(Backend::Fpga),
        other => Err(QuantError::Config(format!(
            "backend = \"{}\" is unknown: use \"x86\" (alias \"fbgemm\"), \"arm\" (alias \"qnnpack\") or \"fpga\"",
            crate::limits::excerpt(other)
        ))),
    }
}

fn parse_dtype(s: &str) -> Result<QuantDtype, QuantError> {
    match s.to_ascii_lowercase().as_str() {
        "qint8" | "int8" => Ok(QuantDtype::QInt8),
        "quint8" | "uint8" => Ok(QuantDtype::QUInt8),
        other => Err(QuantError::Config(format!(
            "dtype = \"{}\" is not supported: tickq-core runs 8-bit activations; use \"qint8\" or \"quint8\"",
            crate::limits::excerpt(other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_file_with_a_bad_value_is_named_in_the_message() {
        let dir = std::env::temp_dir().join(format!("tickq-quant-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("q.toml");
        std::fs::write(&path, "observer = \"percentile\"\npercentile = 120.0\n").unwrap();
        assert_eq!(
            RawQuantConfig::load(&path).unwrap_err().to_string(),
            format!(
                "quantization config: {}: percentile: 120 is out of range: expected a number in [50, 100] (for example 99.99)",
                path.display()
            )
        );
        std::fs::write(&path, "observer = \"mse\"\n").unwrap();
        assert_eq!(
            RawQuantConfig::load(&path).unwrap().observer.as_deref(),
            Some("mse")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn accepts_supported_settings_and_aliases() {
        let c = QuantConfig::from_toml_str(
            "backend = \"fbgemm\"\ndtype = \"qint8\"\nreduce_range = true",
        )
        .unwrap();
        assert_eq!(c.backend, Backend::X86);
        assert_eq!(c.dtype, QuantDtype::QInt8);
        assert_eq!(c.activation_limits(), (-64, 63));
        let c = QuantConfig::from_toml_str(
            "backend = \"qnnpack\"\ndtype = \"quint8\"\nobserver = \"kl\"",
        )
        .unwrap();
        assert_eq!(c.backend, Backend::Arm);
        assert_eq!(c.dtype, QuantDtype::QUInt8);
        assert_eq!(c.observer, ObserverKind::KlEntropy);
        let c = QuantConfig::from_toml_str(
            "backend = \"fpga\"\nobserver = \"moving_average_minmax\"\naveraging_constant = 0.1",
        )
        .unwrap();
        assert_eq!(c.backend, Backend::Fpga);
        assert_eq!(
            c.observer,
            ObserverKind::MovingAverageMinMax {
                averaging_constant: 0.1
            }
        );
        assert_eq!(
            QuantConfig::from_toml_str("percentile = 99.9")
                .unwrap()
                .observer,
            ObserverKind::Percentile { percentile: 99.9 }
        );
        assert_eq!(
            QuantConfig::from_toml_str("observer = \"mse\"")
                .unwrap()
                .observer,
            ObserverKind::Mse
        );
    }

    #[test]
    fn rejects_unsupported_with_a_clear_message() {
        for (text, needle) in [
            ("dtype = \"float16\"", "float16"),
            ("backend = \"cuda\"", "cuda"),
            ("observer = \"histogram2\"", "histogram2"),
            ("percentile = 20.0", "percentile"),
            ("averaging_constant = 0.0", "averaging_constant"),
            ("calibration_samples = 0", "calibration_samples"),
            ("colour = \"red\"", "colour"),
        ] {
            let err = QuantConfig::from_toml_str(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        assert_eq!(
            QuantConfig::from_toml_str("percentile = 20.0")
                .unwrap_err()
                .to_string(),
            "quantization config: percentile: 20 is out of range: expected a number in [50, 100] (for example 99.99)"
        );
        // A long or odd value is shown cut and escaped, not echoed whole.
        let long = format!("observer = \"{}\\u0000\"", "o".repeat(10_000_000));
        let err = QuantConfig::from_toml_str(&long).unwrap_err().to_string();
        assert!(err.len() < 400, "{} bytes", err.len());
        assert!(err.contains("… (10000001 bytes)"), "{err}");
        let nul = QuantConfig::from_toml_str("backend = \"x\\u0000y\"")
            .unwrap_err()
            .to_string();
        assert!(nul.contains("backend = \"x\\0y\""), "{nul}");
    }

    #[test]
    fn command_line_fields_override_the_file() {
        let file: RawQuantConfig = toml::from_str("backend = \"arm\"\nobserver = \"mse\"").unwrap();
        let cli = RawQuantConfig {
            observer: Some("kl".into()),
            ..RawQuantConfig::default()
        };
        let c = file.overridden_by(cli).resolve().unwrap();
        assert_eq!(c.backend, Backend::Arm);
        assert_eq!(c.observer, ObserverKind::KlEntropy);
    }
}
