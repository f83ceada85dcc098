//! `tickq inspect`: a blob's layers, sizes, arena, CRC, metadata and feature spec.

use clap::Args;
use std::path::PathBuf;
use tickq_host::steps::{self, PipelineError};

use crate::args::*;
use crate::out;

#[derive(Args, Debug)]
pub(crate) struct InspectArgs {
    /// Blob file.
    pub(crate) blob: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn run(a: InspectArgs) -> Result<(), PipelineError> {
    let bytes = read_blob(&a.blob)?;
    let model = tickq_core::Model::load(&bytes).map_err(|source| PipelineError::Blob {
        path: a.blob.clone(),
        source,
    })?;
    let info = steps::inspect_blob(&model);
    if a.json {
        out(
            &serde_json::to_string_pretty(&info).map_err(|source| PipelineError::JsonWrite {
                what: "the blob's description",
                source,
            })?,
        )
    } else {
        out(&info.to_text())
    }
}
