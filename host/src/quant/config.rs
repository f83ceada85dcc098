//! The quantization config: the `backend` / `dtype` shape that PyTorch users know,
//! plus tickq's calibration settings.
//!
//! ```toml
//! backend = "x86"        # or "arm"; PyTorch's "fbgemm" and "qnnpack" are accepted as aliases
//! dtype = "qint8"
//! observer = "minmax"       # or "percentile"
//! percentile = 99.99
//! calibration_samples = 4096
//! ```

use std::path::Path;

use serde::Deserialize;

use super::QuantError;
use super::observer::ObserverKind;

/// Which deployment target the int8 arithmetic is tuned for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// x86 servers (PyTorch's `fbgemm` / `x86`).
    X86,
    /// Arm Cortex-M / Cortex-A (PyTorch's `qnnpack`).
    Arm,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::X86 => "x86",
            Self::Arm => "arm",
        })
    }
}

/// The quantized data type of activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantDtype {
    /// Signed int8 activations with an affine zero point; int8 symmetric weights.
    QInt8,
}

impl std::fmt::Display for QuantDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("qint8")
    }
}

/// Settings for static quantization.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantConfig {
    /// Target backend.
    pub backend: Backend,
    /// Activation data type.
    pub dtype: QuantDtype,
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
            observer: ObserverKind::default(),
            calibration_samples: 4096,
        }
    }
}

/// The raw, string-typed form of the config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    backend: Option<String>,
    dtype: Option<String>,
    observer: Option<String>,
    percentile: Option<f64>,
    calibration_samples: Option<usize>,
}

impl QuantConfig {
    /// Builds a config from its string fields, rejecting what tickq cannot run.
    ///
    /// # Errors
    ///
    /// [`QuantError::Config`] naming the field, the value and what is supported.
    pub fn from_parts(
        backend: Option<&str>,
        dtype: Option<&str>,
        observer: Option<&str>,
        percentile: Option<f64>,
        calibration_samples: Option<usize>,
    ) -> Result<Self, QuantError> {
        let mut cfg = Self::default();
        if let Some(b) = backend {
            cfg.backend = parse_backend(b)?;
        }
        if let Some(d) = dtype {
            cfg.dtype = parse_dtype(d)?;
        }
        let pct = percentile.unwrap_or(99.99);
        if !(50.0..=100.0).contains(&pct) {
            return Err(QuantError::Config(format!(
                "percentile = {pct}: must lie in 50..=100 (for example 99.99)"
            )));
        }
        cfg.observer = match observer.map(str::to_ascii_lowercase).as_deref() {
            None if percentile.is_some() => ObserverKind::Percentile { percentile: pct },
            None => ObserverKind::MinMax,
            Some("minmax" | "min-max" | "min_max") => ObserverKind::MinMax,
            Some("percentile") => ObserverKind::Percentile { percentile: pct },
            Some(other) => {
                return Err(QuantError::Config(format!(
                    "observer = \"{other}\" is not supported: use \"minmax\" or \"percentile\""
                )));
            }
        };
        if let Some(n) = calibration_samples {
            if n == 0 {
                return Err(QuantError::Config(
                    "calibration_samples = 0: at least one sample is needed".into(),
                ));
            }
            cfg.calibration_samples = n;
        }
        Ok(cfg)
    }

    /// Parses a TOML config (see the module docs).
    ///
    /// # Errors
    ///
    /// [`QuantError::Config`] for unknown fields, bad types or unsupported values.
    pub fn from_toml_str(text: &str) -> Result<Self, QuantError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| QuantError::Config(format!("{e}")))?;
        Self::from_parts(
            raw.backend.as_deref(),
            raw.dtype.as_deref(),
            raw.observer.as_deref(),
            raw.percentile,
            raw.calibration_samples,
        )
    }

    /// Reads a TOML config file.
    ///
    /// # Errors
    ///
    /// [`QuantError::Config`] naming the file.
    pub fn load(path: &Path) -> Result<Self, QuantError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| QuantError::Config(format!("{}: {e}", path.display())))?;
        Self::from_toml_str(&text)
            .map_err(|e| QuantError::Config(format!("{}: {e}", path.display())))
    }
}

fn parse_backend(s: &str) -> Result<Backend, QuantError> {
    match s.to_ascii_lowercase().as_str() {
        "x86" | "fbgemm" | "onednn" => Ok(Backend::X86),
        "arm" | "qnnpack" => Ok(Backend::Arm),
        "fpga" => Err(QuantError::Config(
            "backend = \"fpga\" (power-of-two scales) is not supported yet: use \"x86\" or \"arm\""
                .into(),
        )),
        other => Err(QuantError::Config(format!(
            "backend = \"{other}\" is unknown: use \"x86\" (alias \"fbgemm\") or \"arm\" (alias \"qnnpack\")"
        ))),
    }
}

fn parse_dtype(s: &str) -> Result<QuantDtype, QuantError> {
    match s.to_ascii_lowercase().as_str() {
        "qint8" | "int8" => Ok(QuantDtype::QInt8),
        "quint8" => Err(QuantError::Config(
            "dtype = \"quint8\" is not supported: tickq-core runs signed int8 activations; use dtype = \"qint8\"".into(),
        )),
        other => Err(QuantError::Config(format!(
            "dtype = \"{other}\" is not supported: the only supported dtype is \"qint8\""
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_qint8_and_aliases() {
        let c = QuantConfig::from_toml_str("backend = \"fbgemm\"\ndtype = \"qint8\"\n").unwrap();
        assert_eq!(c.backend, Backend::X86);
        assert_eq!(c.dtype, QuantDtype::QInt8);
        let c = QuantConfig::from_toml_str("backend = \"qnnpack\"\nobserver = \"minmax\"").unwrap();
        assert_eq!(c.backend, Backend::Arm);
        assert_eq!(c.observer, ObserverKind::MinMax);
    }

    #[test]
    fn rejects_unsupported_with_a_clear_message() {
        for (text, needle) in [
            ("dtype = \"quint8\"", "quint8"),
            ("dtype = \"float16\"", "float16"),
            ("backend = \"cuda\"", "cuda"),
            ("backend = \"fpga\"", "fpga"),
            ("observer = \"kl\"", "kl"),
            ("percentile = 20.0", "percentile"),
            ("colour = \"red\"", "colour"),
        ] {
            let err = QuantConfig::from_toml_str(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
