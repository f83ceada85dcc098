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
    #[command(flatten)]
    pub(crate) data: DataArgs,
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
        data: a.data.path(),
    };
    check_output_file(&opts.out, "the export")?;
    let written = export::run_export(&opts)?;
    for file in &written.files {
        out(&format!("wrote {}", file.display()))?;
    }
    Ok(())
}
