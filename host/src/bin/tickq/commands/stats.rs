//! `tickq stats`: pruning statistics of a checkpoint or a blob.

use clap::Args;
use std::path::PathBuf;
use tickq_host::prune::PruningStatistics;
use tickq_host::steps::PipelineError;

use crate::args::*;
use crate::out;

#[derive(Args, Debug)]
pub(crate) struct StatsArgs {
    /// A checkpoint directory (counts the zeros of weight x mask) or a blob file (counts the zero int8
    /// weights the blob stores, after tickq-core validates it).
    pub(crate) model: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn run(a: StatsArgs) -> Result<(), PipelineError> {
    let stats = if a.model.is_dir() {
        let (model, _) = tickq_host::checkpoint::load_checkpoint(&a.model)?;
        PruningStatistics::of_model(&model)
    } else {
        let bytes = read_blob(&a.model)?;
        PruningStatistics::of_blob(&bytes).map_err(|source| PipelineError::BlobStats {
            path: a.model.clone(),
            source: Box::new(source),
        })?
    };
    if a.json {
        out(
            &serde_json::to_string_pretty(&stats).map_err(|source| PipelineError::JsonWrite {
                what: "the pruning statistics",
                source,
            })?,
        )
    } else {
        let source = if a.model.is_dir() {
            "checkpoint (f32 weight x mask)"
        } else {
            "blob (int8 weights)"
        };
        out(&format!("model        {} {source}", a.model.display()))?;
        out(&stats.to_text())
    }
}
