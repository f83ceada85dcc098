//! `tickq inspect`: a blob's layers, sizes, arena, CRC, metadata, input layout and feature spec, or a
//! checkpoint's model and inputs (names, shape, layout, standardization).

use clap::Args;
use std::path::PathBuf;
use tickq_host::steps::{self, PipelineError};

use crate::args::*;
use crate::out;

#[derive(Args, Debug)]
pub(crate) struct InspectArgs {
    /// Blob file or checkpoint directory.
    pub(crate) blob: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

fn json(value: &impl serde::Serialize) -> Result<String, PipelineError> {
    serde_json::to_string_pretty(value).map_err(|source| PipelineError::JsonWrite {
        what: "the description",
        source,
    })
}

pub(crate) fn run(a: InspectArgs) -> Result<(), PipelineError> {
    // A checkpoint is a directory with an architecture file; any other path is read as a blob (and a directory
    // without one is refused as one).
    if a.blob.join(tickq_host::checkpoint::ARCH_FILE).is_file() {
        let (model, record) = steps::load_checkpoint_inputs(&a.blob)?;
        let info = steps::inspect_checkpoint(&model, &record);
        return out(&if a.json { json(&info)? } else { info.to_text() });
    }
    let bytes = read_blob(&a.blob)?;
    let model = tickq_core::Model::load(&bytes).map_err(|source| PipelineError::Blob {
        path: a.blob.clone(),
        source,
    })?;
    let info = steps::inspect_blob(&model);
    out(&if a.json { json(&info)? } else { info.to_text() })
}
