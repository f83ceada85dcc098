//! The resolved quantization settings: the `backend` / `dtype` shape that PyTorch users know, plus tickq's
//! calibration settings. Users write them as [`QuantOptions`] (a `--quant-config`
//! file, `tickq quantize`'s options or a `quantize` stage).

use std::path::Path;

use super::QuantError;
use super::observer::ObserverKind;
use crate::options::QuantOptions;

crate::choice! {
    /// Which deployment target the int8 arithmetic is tuned for.
    pub enum Backend {
        /// x86 servers (PyTorch's fbgemm / x86); pairs with reduce_range
        X86 = "x86" | "fbgemm" | "onednn",
        /// Arm Cortex-M / Cortex-A (PyTorch's qnnpack)
        Arm = "arm" | "qnnpack",
        /// FPGA fabric: every activation and weight scale is a power of two, so every requantization multiplier
        /// is exactly 2^30 and the requantization is a pure rounding shift
        Fpga = "fpga",
    }
}

crate::choice! {
    /// The quantized data type of activations.
    ///
    /// Both use 256 levels on the same affine grid: a `quint8` value `u` is the `qint8` value `u - 128` with the
    /// zero point shifted by 128, so the blob stores both as int8 and the results are identical.
    pub enum QuantDtype {
        /// Signed int8 activations with an affine zero point in -128..=127
        QInt8 = "qint8" | "int8",
        /// Unsigned uint8 activations with an affine zero point in 0..=255
        QUInt8 = "quint8" | "uint8",
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

    /// Parses a TOML config ([`QuantOptions`]) and resolves it.
    ///
    /// # Errors
    ///
    /// [`QuantError::ConfigSyntax`] for bad TOML, unknown fields or unknown names, [`QuantError::Setting`] for a
    /// value out of range.
    pub fn from_toml_str(text: &str) -> Result<Self, QuantError> {
        QuantOptions::from_toml_str(text)?
            .resolve()
            .map_err(|source| QuantError::Setting {
                file: None,
                source: Box::new(source),
            })
    }

    /// Reads and resolves a TOML config file.
    ///
    /// # Errors
    ///
    /// As [`QuantOptions::load`], naming the file.
    pub fn load(path: &Path) -> Result<Self, QuantError> {
        QuantOptions::load(path)?
            .resolve()
            .map_err(|source| QuantError::Setting {
                file: Some(path.to_path_buf()),
                source: Box::new(source),
            })
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
            QuantConfig::load(&path).unwrap_err().to_string(),
            format!(
                "quantization config: {}: field `percentile`: 120 is out of range: expected a number in [50, 100]",
                path.display()
            )
        );
        std::fs::write(&path, "observer = \"mse\"\n").unwrap();
        assert_eq!(
            QuantConfig::load(&path).unwrap().observer,
            ObserverKind::Mse
        );
        std::fs::remove_dir_all(&dir).unwrap();
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
        // A long or odd value is shown cut and escaped, not echoed whole.
        let long = format!("observer = \"{}\\u0000\"", "o".repeat(10_000_000));
        let err = QuantConfig::from_toml_str(&long).unwrap_err().to_string();
        assert!(err.len() < 600, "{} bytes", err.len());
        assert!(err.contains("… (10000001 bytes)"), "{err}");
    }
}
