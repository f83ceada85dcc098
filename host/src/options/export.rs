//! How a blob is exported: [`ExportSettings`], for `tickq export` and the pipeline's `export` stages.

use serde::{Deserialize, Serialize};

#[cfg(feature = "cli")]
use super::cli::{ranged_default, whole as whole_arg};
use super::{NumericFields, OptionError, whole};
use crate::export::{Format, VectorInput};
use crate::limits;

crate::choice! {
    /// The test vectors' input kind, as a setting names it.
    pub enum VectorInputChoice {
        /// int8 for a static blob, f32 for a dynamic one
        Auto = "auto",
        /// int8 inputs, for Session::run_quantized (static blobs only)
        Int8 = "int8",
        /// f32 inputs, for Session::run
        F32 = "f32",
    }
}

/// The export settings a user gives; the blob, the output path and the data come from the command or the stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct ExportSettings {
    /// Output format (a stage's default: blob).
    #[cfg_attr(
        feature = "cli",
        arg(long, value_enum, ignore_case = true, required = true)
    )]
    pub format: Option<Format>,
    /// A stage's output file name inside its directory (default `model.blob`, `model.h` or `model.rs`); the
    /// command takes `--out` instead.
    #[cfg_attr(feature = "cli", arg(skip))]
    pub file: Option<String>,
    /// C symbol prefix for the header (default: the model name, sanitized).
    #[cfg_attr(feature = "cli", arg(long))]
    pub symbol: Option<String>,
    /// Test vectors from the data's test split, written beside the export as `.tqv` (default 0).
    #[cfg_attr(feature = "cli", arg(long, value_name = "N", allow_negative_numbers = true,
        value_parser = whole_arg(limits::VECTORS),
        help = ranged_default("Also write N test vectors from the data's test split (with the int8 logits \
                               tickq-core computes) beside the export with the extension .tqv; at most the test \
                               split's samples", 0, limits::VECTORS)))]
    pub vectors: Option<usize>,
    /// Test vector inputs: int8 (the blob's own input quantizer applied, for `Session::run_quantized`; static
    /// blobs only, since a dynamic blob's int8 input carries a per-sample exponent), f32 (for `Session::run`), or
    /// auto (default: int8 for a static blob, f32 for a dynamic one).
    #[cfg_attr(feature = "cli", arg(long, value_enum, ignore_case = true))]
    pub vector_input: Option<VectorInputChoice>,
}

impl ExportSettings {
    /// The numeric fields and their ranges.
    pub const NUMERIC: NumericFields = NumericFields {
        whole: &[("vectors", limits::VECTORS)],
        real: &[],
    };

    /// The format ([`Format::Blob`] unless set).
    #[must_use]
    pub fn format(&self) -> Format {
        self.format.unwrap_or(Format::Blob)
    }

    /// The number of test vectors, checked against its range.
    ///
    /// # Errors
    ///
    /// [`OptionError::Range`].
    pub fn vectors(&self) -> Result<usize, OptionError> {
        Ok(whole("vectors", limits::VECTORS, self.vectors)?.unwrap_or(0))
    }

    /// The test vectors' input kind; `None` means [`VectorInput::for_model`].
    #[must_use]
    pub fn vector_input(&self) -> Option<VectorInput> {
        match self.vector_input {
            None | Some(VectorInputChoice::Auto) => None,
            Some(VectorInputChoice::Int8) => Some(VectorInput::Int8),
            Some(VectorInputChoice::F32) => Some(VectorInput::F32),
        }
    }

    /// A stage's output file name: `file`, or the format's default, which must be a plain name in the stage's
    /// directory that is not one of the pipeline's own files.
    ///
    /// # Errors
    ///
    /// [`OptionError::FileName`].
    pub fn stage_file(&self) -> Result<String, OptionError> {
        let file = self
            .file
            .clone()
            .unwrap_or_else(|| self.format().default_file().to_string());
        let plain = !(file.is_empty()
            || file.len() > limits::MAX_NAME_BYTES
            || file.chars().any(char::is_control)
            || file.starts_with('.')
            || file.contains('/')
            || file.contains('\\')
            || file == "stage.json"
            || file == "metrics.json");
        if plain {
            Ok(file)
        } else {
            Err(OptionError::FileName(file))
        }
    }
}
