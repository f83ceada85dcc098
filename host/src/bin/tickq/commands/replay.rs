//! `tickq replay`: raw trades through the device path (tickq-core's `StreamSession`), checked against the host
//! pipeline at every trade, with the latency of each trade from raw trade to signal.

use clap::Args;
use std::path::PathBuf;
use tickq_host::data;
use tickq_host::replay::{self, ReplayReport};
use tickq_host::steps::PipelineError;

use crate::args::{BackendArg, read_blob};
use crate::{out, progress};

#[derive(Args, Debug)]
pub(crate) struct ReplayArgs {
    /// Blob file; it must carry its feature spec (`tickq inspect` shows it), as `tickq quantize` and
    /// `tickq demo` write it.
    pub(crate) blob: PathBuf,
    /// Trade CSV (timestamp, price, size[, side]) to replay; defaults to the bundled ES ticks.
    #[arg(long, value_name = "FILE")]
    pub(crate) data: Option<PathBuf>,
    /// How the file is read.
    #[command(flatten)]
    pub(crate) read: tickq_host::options::ReadOptions,
    #[command(flatten)]
    pub(crate) backend: BackendArg,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn run(a: ReplayArgs) -> Result<(), PipelineError> {
    let bytes = read_blob(&a.blob)?;
    let model = a.backend.load(&bytes, &a.blob)?;
    let path = crate::args::data_path(a.data.as_deref())?;
    progress(&format!("reading {}", path.display()));
    let loaded = data::load_trades_with(&path, &a.read)?;
    for note in loaded.notes.messages(&path.display().to_string()) {
        progress(&note);
    }
    let trades = loaded.trades;
    progress(&format!(
        "replaying {} trades through the device path and the host pipeline",
        trades.len()
    ));
    let report = replay::replay(&model, &trades)?;
    if a.json {
        out(&serde_json::to_string_pretty(&report).map_err(|source| {
            PipelineError::JsonWrite {
                what: "the replay report",
                source,
            }
        })?)?;
    } else {
        out(&text(&a, &report))?;
    }
    if report.mismatches > 0 {
        return Err(PipelineError::ReplayMismatch {
            mismatches: report.mismatches,
            compared: report.compared,
        });
    }
    Ok(())
}

fn text(a: &ReplayArgs, r: &ReplayReport) -> String {
    let mut s = format!(
        "{}: {} trades replayed, {} predictions compared, {} mismatches ({} with another signal)\n\
         raw trade to signal, every trade ({} backend): p50 {:.0} ns, p99 {:.0} ns, p99.9 {:.0} ns, mean {:.1} ns\n\
         trades that gave a signal ({}): p50 {:.0} ns, p99 {:.0} ns, p99.9 {:.0} ns (timer overhead {:.0} ns subtracted)",
        a.blob.display(),
        r.trades,
        r.compared,
        r.mismatches,
        r.signal_mismatches,
        r.latency.backend,
        r.latency.p50,
        r.latency.p99,
        r.latency.p999,
        r.latency.mean,
        r.signal_latency.calls,
        r.signal_latency.p50,
        r.signal_latency.p99,
        r.signal_latency.p999,
        r.latency.timer_overhead,
    );
    for m in &r.first_mismatches {
        s.push_str(&format!(
            "\n  trade {}: host {:?}, device {:?}",
            m.trade, m.host, m.device
        ));
    }
    s
}
