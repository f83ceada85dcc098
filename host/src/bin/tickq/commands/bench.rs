//! `tickq bench`: single-sample latency of a blob through tickq-core.

use clap::Args;
use std::path::PathBuf;
use tickq_host::data::{self};
use tickq_host::limits::{self};
use tickq_host::steps::{self, PipelineError};

use crate::args::*;
use crate::{out, progress};

#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    /// Blob file.
    pub(crate) blob: PathBuf,
    #[arg(long, value_name = "N", default_value_t = 200_000, allow_negative_numbers = true,
          value_parser = whole(limits::LATENCY_CALLS),
          help = ranged("Number of timed single-sample calls", limits::LATENCY_CALLS))]
    pub(crate) calls: usize,
    /// Trade CSV whose test split feeds the benchmark (defaults to the bundled ES ticks), built with the blob's
    /// feature spec and window and the labels and split its sidecar (.quant.json) records; when its features do
    /// not match the blob, seeded random inputs are used.
    #[arg(long, value_name = "CSV")]
    pub(crate) data: Option<PathBuf>,
    /// Trade CSV: time raw trade to signal instead, each call one `StreamSession::push_trade` (the blob's
    /// feature engine, then its model) over the file's trades in order; the blob must carry its feature spec.
    #[arg(long, value_name = "CSV", conflicts_with = "data")]
    pub(crate) trades: Option<PathBuf>,
    /// How the `--data` or `--trades` file is read.
    #[command(flatten)]
    pub(crate) read: tickq_host::options::ReadOptions,
    #[command(flatten)]
    pub(crate) backend: BackendArg,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn run(a: BenchArgs) -> Result<(), PipelineError> {
    let bytes = read_blob(&a.blob)?;
    let model = a.backend.load(&bytes, &a.blob)?;
    let (stats, what) = match &a.trades {
        Some(path) => {
            progress(&format!("reading {}", path.display()));
            let loaded = data::load_trades_with(path, &a.read)?;
            for note in loaded.notes.messages(&path.display().to_string()) {
                progress(&note);
            }
            let trades = loaded.trades;
            let spec = model
                .feature_spec()
                .ok_or(tickq_host::replay::ReplayError::Stream(
                    tickq_core::stream::StreamSessionError::NoFeatureSpec,
                ))?;
            let device = data::core_trades(&trades, &data::FeatureConfig::from_spec(&spec))?;
            progress(&format!(
                "timing {} raw-trade-to-signal calls over the {} trades of {}",
                a.calls,
                device.len(),
                path.display()
            ));
            let stats = tickq_host::replay::measure_trade_latency(&model, &device, a.calls)?;
            (stats, "raw trade to signal")
        }
        None => {
            let path = crate::args::data_path(a.data.as_deref())?;
            let mut settings = steps::blob_data_settings(&model, &a.blob)?;
            settings.dataset.read = settings.dataset.read.overridden_by(&a.read);
            let (inputs, source) = steps::bench_inputs(&model, &path, &settings)?;
            progress(&format!(
                "timing {} single-sample calls on {source}",
                a.calls
            ));
            let stats = tickq_host::eval::measure_latency(&model, inputs.view(), a.calls);
            (stats, "features to signal")
        }
    };
    if a.json {
        out(
            &serde_json::to_string_pretty(&stats).map_err(|source| PipelineError::JsonWrite {
                what: "the latency statistics",
                source,
            })?,
        )
    } else {
        out(&format!(
            "{}: {} calls ({what}) on the {} backend, latency p50 {:.0} ns, p99 {:.0} ns, p99.9 {:.0} ns, mean {:.1} ns (timer overhead {:.0} ns subtracted)",
            a.blob.display(),
            stats.calls,
            stats.backend,
            stats.p50,
            stats.p99,
            stats.p999,
            stats.mean,
            stats.timer_overhead
        ))
    }
}
