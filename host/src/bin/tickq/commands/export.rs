//! `tickq export`: a blob as raw bytes, a C header or a Rust source, with test vectors.

use clap::Args;
use std::path::PathBuf;
use tickq_host::options::ExportSettings;
use tickq_host::paths::check_output_file;
use tickq_host::steps::PipelineError;

use crate::args::*;
use crate::out;

#[derive(Args, Debug)]
pub(crate) struct ExportArgs {
    /// Blob file.
    pub(crate) blob: PathBuf,
    /// Output file [default: model.blob, model.h or model.rs].
    #[arg(long, value_name = "PATH")]
    pub(crate) out: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) settings: ExportSettings,
    #[arg(long, value_name = "N", default_value_t = 0, allow_negative_numbers = true,
          value_parser = whole(tickq_host::limits::VECTORS),
          help = ranged_default("Also write N raw trades from the start of the data's test split, with the \
                                 signal and int8 logits the host pipeline gives each (none while the stream \
                                 warms up), beside the export with the extension .tqt: what firmware that \
                                 streams trades checks itself against; the blob must carry its feature spec",
                                0, tickq_host::limits::VECTORS))]
    pub(crate) trade_vectors: usize,
    #[command(flatten)]
    pub(crate) data: DataArgs,
    /// Take the test vectors from this input-vectors file (.npy, .safetensors, .csv or .parquet, in the blob's
    /// layout; docs/BYO_MODEL.md) instead of the data's test split: --vectors N of its rows, evenly spaced,
    /// or all of them without --vectors.
    #[arg(long, value_name = "FILE")]
    pub(crate) vectors_from: Option<PathBuf>,
    /// The tensor of a safetensors --vectors-from file [default: its only tensor, or `inputs` or `x`].
    #[arg(long, value_name = "NAME", requires = "vectors_from")]
    pub(crate) vectors_tensor: Option<String>,
}

pub(crate) fn run(a: ExportArgs) -> Result<(), PipelineError> {
    use tickq_host::export;
    let format = a.settings.format();
    let opts = export::ExportOptions {
        blob: a.blob.clone(),
        format,
        out: a
            .out
            .clone()
            .unwrap_or_else(|| format.default_file().into()),
        symbol: a.settings.symbol.clone(),
        vectors: a.settings.vectors()?,
        vector_input: a.settings.vector_input(),
        trade_vectors: a.trade_vectors,
        data: a.data.path()?,
        read: a.data.read.clone(),
        vectors_from: a.vectors_from.clone(),
        vectors_tensor: a.vectors_tensor.clone(),
    };
    check_output_file(&opts.out, "the export")?;
    let written = export::run_export(&opts)?;
    for file in &written.files {
        out(&format!("wrote {}", file.display()))?;
    }
    Ok(())
}
