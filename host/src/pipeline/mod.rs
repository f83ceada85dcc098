//! Staged pipelines: `tickq pipeline CONFIG.toml` runs an ordered list of stages (train, prune, distill,
//! quantize, export) from a config file, saves every stage's output and metrics, resumes where it can, and compares the
//! stages in a report with charts.
//!
//! - [`config`] parses and checks the file ([`PipelineConfig`]).
//! - [`run_pipeline`] runs the stages in order. Each stage writes into `OUT/<stage>/`: its checkpoint or blob,
//!   `metrics.json` ([`StageMetrics`], measured on the test split) and, last, `stage.json` with its
//!   fingerprint. Every file goes through [`write_atomic`].
//! - A stage's fingerprint is a SHA-256 over the tickq version, the data file's hash and data settings, the
//!   stage's kind and settings (and architecture text), and the fingerprints of the stages it reads from.
//!   A rerun skips a stage whose fingerprint matches its `stage.json` and whose outputs all exist, unless a
//!   stage it reads from was recomputed in this run; `force` recomputes everything.
//! - At the end `OUT/comparison.md`, `OUT/comparison.json`, `OUT/accuracy_vs_sparsity.svg` and
//!   `OUT/accuracy_vs_size.svg` compare all stages ([`Comparison`]).
//!
//! [`run_demo`] is `tickq demo`: the bundled [`DEMO_CONFIG`] plus the files the demo always wrote.
//!
//! See docs/PIPELINE.md for the config format.

mod charts;
pub mod config;
mod demo;
mod error;
mod metrics;
mod stages;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fsutil::write_atomic;
use crate::model::Sequential;
use crate::steps::{self, PipelineError, PreparedData};

pub use charts::{Point, scatter_svg};
pub use config::{PipelineConfig, Stage, StageSpec};
pub use demo::{DemoOutputs, run_demo};
pub use error::{ConfigError, StageAt, StageProblem, StagesError};
pub use metrics::{Comparison, ComparisonRow, StageMetrics};
use stages::{run_stage, write_json};

/// The config `tickq demo` runs: train demo-mlp → quantize, and a gradual 80 % global prune → quantize.
pub const DEMO_CONFIG: &str = include_str!("../../pipelines/demo.toml");

/// How to run a pipeline.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The output directory.
    pub out: PathBuf,
    /// Recompute every stage, even unchanged ones.
    pub force: bool,
    /// Show progress bars on stderr (they stay hidden anyway when stderr is not a terminal).
    pub progress: bool,
    /// Where whole-split work runs (the int8 evaluation of each stage's blob), and where train and distill
    /// stages train (on a GPU with a CPU fallback for models the GPU trainer cannot run; pruning fine-tunes stay
    /// on the CPU). The device is not part of a stage's fingerprint: outputs from either device are reused.
    pub device: crate::device::ComputeDevice,
}

/// Whether a stage ran in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageStatus {
    /// The stage was computed.
    Ran,
    /// The stage's fingerprint matched and its outputs existed: it was skipped.
    Skipped,
}

/// One stage's result.
#[derive(Debug, Clone)]
pub struct StageOutcome {
    /// The stage's name.
    pub name: String,
    /// Its kind.
    pub kind: &'static str,
    /// Ran or skipped.
    pub status: StageStatus,
    /// Its fingerprint (hex SHA-256).
    pub fingerprint: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Its metrics (from an earlier run when skipped).
    pub metrics: StageMetrics,
}

/// What [`run_pipeline`] did.
#[derive(Debug, Clone)]
pub struct PipelineRun {
    /// One outcome per stage, in config order.
    pub stages: Vec<StageOutcome>,
    /// The comparison written as `comparison.json`.
    pub comparison: Comparison,
    /// The report and chart files written at the end.
    pub files: Vec<PathBuf>,
}

/// `stage.json`: written last, so its presence means the stage finished.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StageRecord {
    stage: String,
    kind: String,
    fingerprint: String,
    inputs: Vec<InputRecord>,
    data_sha256: String,
    tickq_version: String,
    /// Files the stage wrote, relative to its directory.
    outputs: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct InputRecord {
    stage: String,
    fingerprint: String,
}

/// A finished stage's product, kept in memory for the stages after it.
enum Artifact {
    Model(Box<Sequential>),
    Blob(Vec<u8>),
    Files,
}

struct Done {
    artifact: Artifact,
    fingerprint: String,
    ran: bool,
    metrics: StageMetrics,
}

const VERSION: &str = env!("CARGO_PKG_VERSION");
const CHECKPOINT_FILES: [&str; 3] = ["model.safetensors", "arch.toml", "preprocess.json"];

/// Progress bars on stderr, or hidden ones.
struct Progress {
    enabled: bool,
}

impl Progress {
    fn bar(&self, len: usize, prefix: &str) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(prefix.to_string());
        bar
    }

    fn spinner(&self, message: String) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        spinner.set_message(message);
        spinner.enable_steady_tick(Duration::from_millis(100));
        spinner
    }
}

/// Runs `cfg`'s stages into `opts.out`, skipping unchanged ones, then writes the comparison and charts.
///
/// `log` gets one plain line for the data and one per stage result.
///
/// # Errors
///
/// [`StagesError::OutputPath`] when `opts.out` (or a parent) exists and is not a directory, before anything runs;
/// [`StagesError::Data`] when the trades do not load, [`StagesError::Stage`] naming the failing stage, and
/// [`StagesError::Output`] for the report files.
pub fn run_pipeline(
    cfg: &PipelineConfig,
    opts: &RunOptions,
    log: &mut dyn FnMut(&str),
) -> Result<PipelineRun, StagesError> {
    crate::paths::check_output_dir(&opts.out, "the stage directories and the comparison")?;
    let csv = match &cfg.csv {
        Some(csv) => csv.clone(),
        None => {
            crate::data::default_data_path().map_err(|e| StagesError::Data(Box::new(e.into())))?
        }
    };
    let data = steps::prepare_data(&csv, &cfg.data.dataset(), cfg.data.split.as_ref())
        .map_err(|e| StagesError::Data(Box::new(e)))?;
    log(&format!(
        "data: {}, {} trades; samples train / validation / test = {} / {} / {}",
        data.source,
        data.trades,
        data.splits.train.y.len(),
        data.splits.validation.y.len(),
        data.splits.test.y.len()
    ));
    for note in data.read_notes.messages(&data.source) {
        log(&note);
    }
    for note in &data.input_notes {
        log(note);
    }
    for w in data.label_warnings() {
        log(&format!("warning: {w}"));
    }
    let data_material = serde_json::json!({
        "sha256": steps::hex(&data.sha256),
        "dataset": data.dataset,
        "split": data.split,
    })
    .to_string();
    let progress = Progress {
        enabled: opts.progress,
    };
    let mut done: HashMap<String, Done> = HashMap::new();
    let mut outcomes = Vec::new();
    for stage in &cfg.stages {
        let input_names = stage.spec.inputs();
        let input_done: Vec<&Done> = input_names
            .iter()
            .filter_map(|(_, f)| done.get(*f))
            .collect();
        let inputs: Vec<InputRecord> = input_names
            .iter()
            .zip(&input_done)
            .map(|((_, f), d)| InputRecord {
                stage: (*f).to_string(),
                fingerprint: d.fingerprint.clone(),
            })
            .collect();
        let fingerprint = fingerprint(stage, &inputs, &data_material);
        let dir = opts.out.join(&stage.name);
        let input_ran = input_done.iter().any(|d| d.ran);
        let reused = if opts.force || input_ran {
            None
        } else {
            reuse(&dir, stage, &fingerprint)
        };
        let kind = stage.spec.kind();
        let (artifact, metrics, status) = match reused {
            Some((artifact, metrics)) => (artifact, metrics, StageStatus::Skipped),
            None => {
                let wrap = |source: PipelineError| StagesError::Stage {
                    stage: stage.name.clone(),
                    kind,
                    source: Box::new(source),
                };
                let (artifact, metrics) = run_stage(
                    stage,
                    &input_done,
                    &data,
                    &dir,
                    &progress,
                    &opts.device,
                    log,
                )
                .map_err(wrap)?;
                let record = StageRecord {
                    stage: stage.name.clone(),
                    kind: kind.to_string(),
                    fingerprint: fingerprint.clone(),
                    inputs,
                    data_sha256: steps::hex(&data.sha256),
                    tickq_version: VERSION.to_string(),
                    outputs: artifact.1,
                };
                write_json(&dir.join("metrics.json"), "metrics.json", &metrics).map_err(wrap)?;
                write_json(&dir.join("stage.json"), "stage.json", &record).map_err(wrap)?;
                (artifact.0, metrics, StageStatus::Ran)
            }
        };
        log(&stage_line(&metrics, status, &data));
        outcomes.push(StageOutcome {
            name: stage.name.clone(),
            kind,
            status,
            fingerprint: fingerprint.clone(),
            dir,
            metrics: metrics.clone(),
        });
        done.insert(
            stage.name.clone(),
            Done {
                artifact,
                fingerprint,
                ran: status == StageStatus::Ran,
                metrics,
            },
        );
    }
    let comparison = Comparison {
        tickq_version: VERSION.to_string(),
        config: cfg.file.clone(),
        data_source: data.source.clone(),
        data_sha256: steps::hex(&data.sha256),
        test_samples: data.splits.test.y.len(),
        stages: outcomes
            .iter()
            .map(|o| ComparisonRow {
                metrics: o.metrics.clone(),
                ran: o.status == StageStatus::Ran,
            })
            .collect(),
    };
    let files = write_comparison(&opts.out, &comparison)?;
    Ok(PipelineRun {
        stages: outcomes,
        comparison,
        files,
    })
}

/// The plain line printed for a stage's result.
fn stage_line(m: &StageMetrics, status: StageStatus, data: &PreparedData) -> String {
    let what = match status {
        StageStatus::Ran => format!("done in {:.1} s", m.wall_seconds),
        StageStatus::Skipped => "skipped (unchanged)".to_string(),
    };
    let latency = m
        .latency_p50_ns
        .map(|p| format!(", p50 {p:.0} ns"))
        .unwrap_or_default();
    format!(
        "{} ({}): {what}; {}, macro-F1 {:.4}, {} parameters ({:.1} % of weights non-zero), {} bytes ({:.2}x){latency}",
        m.stage,
        m.kind,
        data.accuracy_with_baseline(m.accuracy),
        m.macro_f1,
        m.parameters,
        100.0 * m.nonzero_fraction,
        m.size_bytes,
        m.compression_ratio
    )
}

fn fingerprint(stage: &Stage, inputs: &[InputRecord], data_material: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"tickq-stage-v1\n");
    h.update(VERSION.as_bytes());
    h.update(b"\n");
    h.update(data_material.as_bytes());
    h.update(b"\n");
    h.update(stage.spec.kind().as_bytes());
    h.update(b"\n");
    h.update(stage.spec.settings_json().as_bytes());
    for i in inputs {
        h.update(b"\ninput ");
        h.update(i.fingerprint.as_bytes());
    }
    steps::hex(&h.finalize())
}

/// The stage's earlier result, when its record matches `fingerprint` and every output is there and loads.
fn reuse(dir: &Path, stage: &Stage, fingerprint: &str) -> Option<(Artifact, StageMetrics)> {
    let record: StageRecord =
        serde_json::from_slice(&std::fs::read(dir.join("stage.json")).ok()?).ok()?;
    if record.fingerprint != fingerprint || record.stage != stage.name {
        return None;
    }
    if !record.outputs.iter().all(|o| dir.join(o).is_file()) {
        return None;
    }
    let metrics: StageMetrics =
        serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).ok()?).ok()?;
    let artifact = match stage.spec.produces() {
        config::Produces::Model => {
            let (model, _) = steps::load_checkpoint(&dir.join("checkpoint")).ok()?;
            Artifact::Model(Box::new(model))
        }
        config::Produces::Blob => {
            let blob = std::fs::read(dir.join("model.blob")).ok()?;
            tickq_core::Model::load(&blob).ok()?;
            Artifact::Blob(blob)
        }
        config::Produces::Files => Artifact::Files,
    };
    Some((artifact, metrics))
}

/// Writes `comparison.json`, `comparison.md` and the two charts into `out`.
fn write_comparison(out: &Path, comparison: &Comparison) -> Result<Vec<PathBuf>, StagesError> {
    let put = |name: &str, bytes: &[u8]| -> Result<PathBuf, StagesError> {
        let path = out.join(name);
        write_atomic(&path, bytes).map_err(|source| StagesError::Output {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    };
    let json =
        serde_json::to_string_pretty(comparison).map_err(|source| StagesError::OutputJson {
            path: out.join("comparison.json"),
            source,
        })?;
    // Export stages repeat their blob's numbers, so the charts leave them out.
    let rows: Vec<&StageMetrics> = comparison
        .stages
        .iter()
        .map(|r| &r.metrics)
        .filter(|m| m.kind != "export")
        .collect();
    let chart = |name: &str,
                 title: &str,
                 x_desc: &str,
                 x_max: Option<f64>,
                 x: &dyn Fn(&StageMetrics) -> f64| {
        let points: Vec<Point> = rows
            .iter()
            .map(|m| Point {
                label: m.stage.clone(),
                x: x(m),
                y: 100.0 * m.accuracy,
            })
            .collect();
        let svg =
            scatter_svg(title, x_desc, "test accuracy (%)", &points, x_max).map_err(|reason| {
                StagesError::Chart {
                    path: out.join(name),
                    reason,
                }
            })?;
        put(name, svg.as_bytes())
    };
    Ok(vec![
        put("comparison.json", json.as_bytes())?,
        put("comparison.md", comparison.to_markdown().as_bytes())?,
        chart(
            "accuracy_vs_sparsity.svg",
            "Test accuracy against non-zero weights, one point per stage",
            "non-zero weights (% of Dense and Conv1d weights)",
            Some(105.0),
            &|m| 100.0 * m.nonzero_fraction,
        )?,
        chart(
            "accuracy_vs_size.svg",
            "Test accuracy against model size, one point per stage",
            "model size (KiB: blob bytes for int8 stages, 4 bytes per parameter for f32 stages)",
            None,
            &|m| m.size_bytes as f64 / 1024.0,
        )?,
    ])
}
