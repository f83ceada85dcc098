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
mod metrics;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::distill::DistillError;
use crate::eval::{self, Metrics};
use crate::fsutil::{replace_dir, write_atomic};
use crate::gpu_train::TrainDevice;
use crate::model::Sequential;
use crate::prune::PruningStatistics;
use crate::report::RangeRow;
use crate::steps::{self, PipelineError, PreparedData, QuantSidecar};
use crate::train::{TrainConfig, TrainError};

pub use charts::{Point, scatter_svg};
pub use config::{PipelineConfig, Stage, StageSpec};
pub use metrics::{Comparison, ComparisonRow, StageMetrics};

/// The config `tickq demo` runs: train demo-mlp → quantize, and a gradual 80 % global prune → quantize.
pub const DEMO_CONFIG: &str = include_str!("../../pipelines/demo.toml");

/// Everything that can stop a pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StagesError {
    /// The config file does not read, parse or check; the message names the stage and field.
    #[error("{file}: {message}")]
    Config {
        /// The config file.
        file: String,
        /// What is wrong, starting with the stage and field.
        message: String,
    },
    /// The `[data]` section's trades could not be read or turned into samples.
    #[error("[data]: {0}")]
    Data(#[source] Box<PipelineError>),
    /// A stage failed while running.
    #[error("stage `{stage}` ({kind}): {source}")]
    Stage {
        /// The stage's name.
        stage: String,
        /// Its kind.
        kind: &'static str,
        /// What failed.
        #[source]
        source: Box<PipelineError>,
    },
    /// The output directory (or a parent) exists and is not a directory.
    #[error(transparent)]
    OutputPath(#[from] crate::paths::OutputPathError),
    /// A report or chart could not be written.
    #[error("{path}: {message}")]
    Output {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
}

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
    let data = steps::prepare_data(&cfg.csv, &cfg.data.dataset(), cfg.data.split.as_ref())
        .map_err(|e| StagesError::Data(Box::new(e)))?;
    log(&format!(
        "data: {}, {} trades; samples train / validation / test = {} / {} / {}",
        data.source,
        data.trades,
        data.splits.train.y.len(),
        data.splits.validation.y.len(),
        data.splits.test.y.len()
    ));
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
        log(&stage_line(&metrics, status));
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
fn stage_line(m: &StageMetrics, status: StageStatus) -> String {
    let what = match status {
        StageStatus::Ran => format!("done in {:.1} s", m.wall_seconds),
        StageStatus::Skipped => "skipped (unchanged)".to_string(),
    };
    let latency = m
        .latency_p50_ns
        .map(|p| format!(", p50 {p:.0} ns"))
        .unwrap_or_default();
    format!(
        "{} ({}): {what}; accuracy {:.2} %, macro-F1 {:.4}, {} parameters ({:.1} % of weights non-zero), {} bytes ({:.2}x){latency}",
        m.stage,
        m.kind,
        100.0 * m.accuracy,
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

fn write_json<T: Serialize>(
    path: &Path,
    what: &'static str,
    value: &T,
) -> Result<(), PipelineError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|source| PipelineError::JsonWrite { what, source })?;
    write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// The model an input stage produced.
fn input_model(input: Option<&Done>) -> Result<&Sequential, PipelineError> {
    match input.map(|d| &d.artifact) {
        Some(Artifact::Model(m)) => Ok(m),
        _ => Err(PipelineError::StageInput { expected: "model" }),
    }
}

type StageProduct = ((Artifact, Vec<String>), StageMetrics);

fn run_stage(
    stage: &Stage,
    inputs: &[&Done],
    data: &PreparedData,
    dir: &Path,
    progress: &Progress,
    device: &crate::device::ComputeDevice,
    log: &mut dyn FnMut(&str),
) -> Result<StageProduct, PipelineError> {
    let train_device = TrainDevice::from(device);
    let started = Instant::now();
    let input = inputs.first().copied();
    // A stage that runs loses its record first, so an interrupted run never looks finished.
    match std::fs::remove_file(dir.join("stage.json")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    let kind = stage.spec.kind().to_string();
    let from = stage.spec.from().map(str::to_string);
    let (artifact, outputs, mut metrics) = match &stage.spec {
        StageSpec::Train { arch, config, .. } => {
            let bar = progress.bar(config.epochs, &format!("{}: training", stage.name));
            let (model, history) =
                steps::train_model_on(&train_device, arch.clone(), data, config, &mut |e| {
                    bar.inc(1);
                    bar.set_message(format!("val acc {:.2} %", 100.0 * e.val_accuracy));
                })?;
            bar.finish_and_clear();
            steps::save_checkpoint(&dir.join("checkpoint"), &model, &data.preprocess())?;
            write_json(
                &dir.join("history.json"),
                "history.json",
                &serde_json::json!({
                    "best_epoch": history.best_epoch,
                    "stopped_early": history.stopped_early,
                    "epochs": history.epochs,
                }),
            )?;
            let reference = model.num_parameters() * 4;
            let m = f32_metrics(&stage.name, &kind, from, &model, data, reference);
            (
                Artifact::Model(Box::new(model)),
                model_outputs("history.json"),
                m,
            )
        }
        StageSpec::Prune { plan, .. } => {
            let mut model = input_model(input)?.clone();
            let reference = input.map_or(0, |d| d.metrics.reference_f32_bytes);
            let bar = progress.bar(
                plan.schedule.targets().len(),
                &format!("{}: pruning", stage.name),
            );
            let steps = steps::prune_model(
                &mut model,
                data,
                plan,
                &mut |r| {
                    if r.step > 0 || r.target_sparsity.is_some() {
                        bar.inc(1);
                    }
                    bar.set_message(format!("sparsity {:.1} %", r.sparsity));
                },
                &mut |_| {},
            )?;
            bar.finish_and_clear();
            steps::save_checkpoint(&dir.join("checkpoint"), &model, &data.preprocess())?;
            write_json(&dir.join("steps.json"), "steps.json", &steps)?;
            let m = f32_metrics(&stage.name, &kind, from, &model, data, reference);
            (
                Artifact::Model(Box::new(model)),
                model_outputs("steps.json"),
                m,
            )
        }
        StageSpec::Distill {
            student,
            distill,
            config,
            ..
        } => {
            let teacher = input_model(input)?;
            let mut model = match student {
                Some((arch, _)) => {
                    steps::check_arch_fits(arch, data)?;
                    Sequential::new(arch.clone(), config.seed)?
                }
                None => input_model(inputs.get(1).copied())?.clone(),
            };
            let reference = input.map_or(0, |d| d.metrics.reference_f32_bytes);
            let train_x = data.normalized(data.splits.train.x.view());
            let val_x = data.normalized(data.splits.validation.x.view());
            let bar = progress.bar(config.epochs, &format!("{}: distilling", stage.name));
            // While the stage runs, the student's training state lives in `train-state/`, so a rerun after an
            // interruption resumes it; a state of another run (other settings, data or teacher) or a damaged one
            // is discarded, and the state goes once the stage's outputs are written.
            let state_dir = dir.join("train-state");
            let resumable = TrainConfig {
                checkpoint_dir: Some(state_dir.clone()),
                ..config.clone()
            };
            let attempt = |model: &mut Sequential| {
                crate::distill::distill_train_on(
                    &train_device,
                    teacher,
                    model,
                    train_x.view(),
                    &data.splits.train.y,
                    val_x.view(),
                    &data.splits.validation.y,
                    distill,
                    &resumable,
                    &mut |e| {
                        bar.inc(1);
                        bar.set_message(format!("val acc {:.2} %", 100.0 * e.val_accuracy));
                    },
                )
            };
            let history = match attempt(&mut model) {
                Err(DistillError::Train(
                    e @ (TrainError::Resume { .. }
                    | TrainError::InvalidState { .. }
                    | TrainError::InvalidStateTensors { .. }),
                )) => {
                    log(&format!(
                        "{}: discarding the training state in {}: {e}",
                        stage.name,
                        state_dir.display()
                    ));
                    crate::fsutil::remove_dir_atomic(&state_dir)?;
                    attempt(&mut model)
                }
                other => other,
            }
            .map_err(PipelineError::Distill)?;
            bar.finish_and_clear();
            if let Some(done) = history.resumed_from {
                log(&format!(
                    "{}: resumed an interrupted run after epoch {done}",
                    stage.name
                ));
            }
            steps::save_checkpoint(&dir.join("checkpoint"), &model, &data.preprocess())?;
            write_json(
                &dir.join("history.json"),
                "history.json",
                &serde_json::json!({
                    "best_epoch": history.best_epoch,
                    "stopped_early": history.stopped_early,
                    "epochs": history.epochs,
                }),
            )?;
            crate::fsutil::remove_dir_atomic(&state_dir)?;
            let m = f32_metrics(&stage.name, &kind, from, &model, data, reference);
            (
                Artifact::Model(Box::new(model)),
                model_outputs("history.json"),
                m,
            )
        }
        StageSpec::Quantize {
            raw,
            config,
            options,
            latency_calls,
        } => {
            let model = input_model(input)?;
            let reference = input.map_or(0, |d| d.metrics.reference_f32_bytes);
            let q = if raw.dynamic == Some(true) {
                steps::quantize_model_dynamic(model, data)?
            } else {
                steps::quantize_model_with(model, data, config, options)?
            };
            for w in &q.warnings {
                log(&format!("{}: warning: {w}", stage.name));
            }
            let blob_path = dir.join("model.blob");
            write_atomic(&blob_path, &q.blob)?;
            let summary = if raw.dynamic == Some(true) {
                // No calibration: the settings below would not describe this blob.
                crate::report::QuantSummary {
                    observer: "dynamic".into(),
                    ..steps::unknown_quant_summary()
                }
            } else {
                steps::quant_summary(
                    config,
                    config.calibration_samples.min(data.splits.train.y.len()),
                )
            };
            let ranges: Vec<RangeRow> = q.ranges.iter().map(RangeRow::from).collect();
            QuantSidecar {
                quantization: summary.clone(),
                ranges: ranges.clone(),
            }
            .write(&blob_path)?;
            let spinner = progress.spinner(format!(
                "{}: evaluating and timing {latency_calls} calls",
                stage.name
            ));
            let report = steps::evaluate_on(
                device,
                model,
                steps::BlobFile {
                    path: &blob_path,
                    bytes: &q.blob,
                },
                data,
                summary,
                ranges,
                *latency_calls,
            )?;
            spinner.finish_and_clear();
            report.write(dir)?;
            let stats =
                PruningStatistics::of_blob(&q.blob).map_err(|source| PipelineError::BlobStats {
                    path: blob_path.clone(),
                    source: Box::new(source),
                })?;
            let m = StageMetrics {
                stage: stage.name.clone(),
                kind: kind.clone(),
                from,
                accuracy: report.int8.accuracy,
                macro_f1: report.int8.macro_f1,
                parameters: stats.parameters,
                nonzero_parameters: stats.parameters.saturating_sub(stats.zero_parameters),
                nonzero_fraction: nonzero_fraction(&stats),
                size_bytes: q.blob.len(),
                blob_bytes: Some(q.blob.len()),
                compression_ratio: reference as f64 / q.blob.len().max(1) as f64,
                reference_f32_bytes: reference,
                agreement: Some(report.int8.agreement),
                latency_p50_ns: Some(report.latency_ns.p50),
                latency_p99_ns: Some(report.latency_ns.p99),
                wall_seconds: 0.0,
                peak_rss_bytes: None,
            };
            let outputs = ["model.blob", "model.quant.json", "report.md", "report.json"]
                .map(String::from)
                .to_vec();
            (Artifact::Blob(q.blob), outputs, m)
        }
        StageSpec::Export {
            raw,
            format,
            file,
            vector_input,
        } => {
            let Some(Done {
                artifact: Artifact::Blob(blob),
                metrics: source_metrics,
                ..
            }) = input
            else {
                return Err(PipelineError::StageInput { expected: "blob" });
            };
            let model = tickq_core::Model::load(blob).map_err(|source| PipelineError::Blob {
                path: dir.with_file_name(&source_metrics.stage).join("model.blob"),
                source,
            })?;
            let vectors = match raw.settings.vectors.unwrap_or(0) {
                0 => None,
                n => Some(crate::export::test_vectors(
                    &model,
                    data.splits.test.x.view(),
                    n,
                    vector_input.unwrap_or_else(|| crate::export::VectorInput::for_model(&model)),
                )?),
            };
            let written = crate::export::write_export(
                &model,
                *format,
                &dir.join(file),
                raw.settings.symbol.as_deref(),
                vectors.as_deref(),
            )?;
            let outputs = written
                .files
                .iter()
                .filter_map(|p| p.strip_prefix(dir).ok())
                .map(|p| p.display().to_string())
                .collect();
            let m = StageMetrics {
                stage: stage.name.clone(),
                kind: kind.clone(),
                from,
                ..source_metrics.clone()
            };
            (Artifact::Files, outputs, m)
        }
    };
    metrics.wall_seconds = started.elapsed().as_secs_f64();
    metrics.peak_rss_bytes = eval::peak_rss_bytes();
    Ok(((artifact, outputs), metrics))
}

fn model_outputs(extra: &str) -> Vec<String> {
    CHECKPOINT_FILES
        .iter()
        .map(|f| format!("checkpoint/{f}"))
        .chain(std::iter::once(extra.to_string()))
        .collect()
}

fn nonzero_fraction(stats: &PruningStatistics) -> f64 {
    if stats.total_parameters == 0 {
        1.0
    } else {
        (stats.total_parameters - stats.zero_parameters.min(stats.total_parameters)) as f64
            / stats.total_parameters as f64
    }
}

/// Test-split metrics of an f32 model.
fn f32_metrics(
    stage: &str,
    kind: &str,
    from: Option<String>,
    model: &Sequential,
    data: &PreparedData,
    reference_f32_bytes: usize,
) -> StageMetrics {
    let test = &data.splits.test;
    let predicted = model.predict(data.normalized(test.x.view()).view());
    let m = Metrics::compute(&predicted, &test.y, &test.label_names);
    let stats = PruningStatistics::of_model(model);
    let size = model.num_parameters() * 4;
    StageMetrics {
        stage: stage.to_string(),
        kind: kind.to_string(),
        from,
        accuracy: m.accuracy,
        macro_f1: m.macro_f1,
        parameters: model.num_parameters(),
        nonzero_parameters: model.num_parameters().saturating_sub(stats.zero_parameters),
        nonzero_fraction: nonzero_fraction(&stats),
        size_bytes: size,
        blob_bytes: None,
        compression_ratio: reference_f32_bytes as f64 / size.max(1) as f64,
        reference_f32_bytes,
        agreement: None,
        latency_p50_ns: None,
        latency_p99_ns: None,
        wall_seconds: 0.0,
        peak_rss_bytes: None,
    }
}

/// Writes `comparison.json`, `comparison.md` and the two charts into `out`.
fn write_comparison(out: &Path, comparison: &Comparison) -> Result<Vec<PathBuf>, StagesError> {
    let put = |name: &str, bytes: &[u8]| -> Result<PathBuf, StagesError> {
        let path = out.join(name);
        write_atomic(&path, bytes).map_err(|e| StagesError::Output {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(path)
    };
    let json = serde_json::to_string_pretty(comparison).map_err(|e| StagesError::Output {
        path: out.join("comparison.json").display().to_string(),
        message: e.to_string(),
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
            scatter_svg(title, x_desc, "test accuracy (%)", &points, x_max).map_err(|message| {
                StagesError::Output {
                    path: out.join(name).display().to_string(),
                    message,
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

/// What [`run_demo`] wrote besides the pipeline's own files.
#[derive(Debug, Clone)]
pub struct DemoOutputs {
    /// The pipeline run.
    pub run: PipelineRun,
    /// `OUT/checkpoint/`: the trained (unpruned) model.
    pub checkpoint: PathBuf,
    /// `OUT/model.blob`: its int8 blob with the default settings (and `model.quant.json` beside it).
    pub blob: PathBuf,
    /// `OUT/report.md` and `OUT/report.json`: that pair's evaluation ([`crate::report::Report`]).
    pub report: [PathBuf; 2],
}

/// `tickq demo`: runs [`DEMO_CONFIG`] into `out` (on `csv`, or the bundled ticks), then copies the trained
/// model's checkpoint to `out/checkpoint/`, its blob to `out/model.blob` and that blob's report to
/// `out/report.{md,json}`, the files the demo has always written.
///
/// # Errors
///
/// As [`run_pipeline`], and [`StagesError::Output`] when a copy fails.
pub fn run_demo(
    csv: Option<&Path>,
    opts: &RunOptions,
    log: &mut dyn FnMut(&str),
) -> Result<DemoOutputs, StagesError> {
    let mut cfg = PipelineConfig::parse(
        DEMO_CONFIG,
        "host/pipelines/demo.toml (bundled)",
        Path::new("."),
    )?;
    if let Some(csv) = csv {
        cfg.csv = csv.to_path_buf();
    }
    let run = run_pipeline(&cfg, opts, log)?;
    let out = &opts.out;
    let copy = |from: PathBuf, to: PathBuf| -> Result<PathBuf, StagesError> {
        let output = |e: std::io::Error| StagesError::Output {
            path: to.display().to_string(),
            message: e.to_string(),
        };
        let bytes = std::fs::read(&from).map_err(output)?;
        write_atomic(&to, &bytes).map_err(output)?;
        Ok(to)
    };
    // The checkpoint is copied as one unit, like every checkpoint tickq writes.
    let from = out.join("train").join("checkpoint");
    let to = out.join("checkpoint");
    let output = |path: &Path| {
        let path = path.display().to_string();
        move |e: std::io::Error| StagesError::Output {
            path,
            message: e.to_string(),
        }
    };
    let contents = CHECKPOINT_FILES
        .iter()
        .map(|f| std::fs::read(from.join(f)).map_err(output(&from.join(f))))
        .collect::<Result<Vec<_>, _>>()?;
    let files: Vec<(&str, &[u8])> = CHECKPOINT_FILES
        .iter()
        .zip(&contents)
        .map(|(f, bytes)| (*f, bytes.as_slice()))
        .collect();
    replace_dir(&to, &files, &[]).map_err(output(&to))?;
    let int8 = out.join("int8");
    let blob = copy(int8.join("model.blob"), out.join("model.blob"))?;
    copy(int8.join("model.quant.json"), out.join("model.quant.json"))?;
    let report = [
        copy(int8.join("report.md"), out.join("report.md"))?,
        copy(int8.join("report.json"), out.join("report.json"))?,
    ];
    Ok(DemoOutputs {
        run,
        checkpoint: out.join("checkpoint"),
        blob,
        report,
    })
}
