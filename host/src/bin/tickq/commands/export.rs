//! `tickq export`: a blob as raw bytes, a C header or a Rust source, with test vectors.

use clap::{Args, ValueEnum};
use std::path::PathBuf;
use tickq_host::limits::{self};
use tickq_host::paths::check_output_file;
use tickq_host::steps::PipelineError;

use crate::args::*;
use crate::out;

#[derive(ValueEnum, Debug, Clone, Copy)]
pub(crate) enum ExportFormat {
    Blob,
    CHeader,
    Rust,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub(crate) enum VectorInputArg {
    /// int8 for a static blob, f32 for a dynamic one.
    Auto,
    /// int8 inputs, for Session::run_quantized (static blobs only).
    Int8,
    /// f32 inputs, for Session::run.
    F32,
}

#[derive(Args, Debug)]
pub(crate) struct ExportArgs {
    /// Blob file.
    pub(crate) blob: PathBuf,
    /// Output format: the raw blob, a C header (aligned array plus length and arena macros), or a Rust
    /// source file that embeds the blob (written beside it as .blob) with include_bytes!.
    #[arg(long, value_enum)]
    pub(crate) format: ExportFormat,
    /// Output file [default: model.blob, model.h or model.rs].
    #[arg(long, value_name = "PATH")]
    pub(crate) out: Option<PathBuf>,
    /// C symbol prefix for the header [default: the model name, sanitized].
    #[arg(long)]
    pub(crate) symbol: Option<String>,
    #[arg(long, value_name = "N", default_value_t = 0, allow_negative_numbers = true,
          value_parser = whole(limits::VECTORS),
          help = ranged("Also write N test vectors from the data's test split (with the int8 logits tickq-core computes) \
                         to OUT with the extension .tqv; at most the test split's samples", limits::VECTORS))]
    pub(crate) vectors: usize,
    /// Test vector inputs: int8 (the blob's own input quantizer applied, for Session::run_quantized; static blobs
    /// only, since a dynamic blob's int8 input carries a per-sample exponent), f32 (for Session::run), or auto (int8
    /// for a static blob, f32 for a dynamic one).
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) vector_input: VectorInputArg,
    #[command(flatten)]
    pub(crate) data: DataArgs,
}

pub(crate) fn run(a: ExportArgs) -> Result<(), PipelineError> {
    use tickq_host::export::{self, Format, VectorInput};
    let (format, default_out) = match a.format {
        ExportFormat::Blob => (Format::Blob, "model.blob"),
        ExportFormat::CHeader => (Format::CHeader, "model.h"),
        ExportFormat::Rust => (Format::Rust, "model.rs"),
    };
    let opts = export::ExportOptions {
        blob: a.blob.clone(),
        format,
        out: a.out.clone().unwrap_or_else(|| default_out.into()),
        symbol: a.symbol.clone(),
        vectors: a.vectors,
        vector_input: match a.vector_input {
            VectorInputArg::Auto => None,
            VectorInputArg::Int8 => Some(VectorInput::Int8),
            VectorInputArg::F32 => Some(VectorInput::F32),
        },
        data: a.data.path(),
    };
    check_output_file(&opts.out, "the export")?;
    let written = export::run_export(&opts)?;
    for file in &written.files {
        out(&format!("wrote {}", file.display()))?;
    }
    Ok(())
}
