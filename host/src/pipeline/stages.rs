//! Running one stage: each kind's work, and the metrics of what it produced.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::config::{CalibrationFile, ExportStage, QuantizeStage};
use super::{Artifact, CHECKPOINT_FILES, Done, Progress, Stage, StageMetrics, StageSpec};
use crate::device::ComputeDevice;
use crate::distill::{DistillConfig, DistillError};
use crate::eval::{self, Metrics};
use crate::export::{Format, VectorInput};
use crate::fsutil::write_atomic;
use crate::gpu_train::TrainDevice;
use crate::model::{Architecture, Sequential};
use crate::prune::{PruningPlan, PruningStatistics};
use crate::quant::QuantConfig;
use crate::report::RangeRow;
use crate::steps::{self, EncodeOptions, PipelineError, PreparedData, QuantSidecar};
use crate::train::{TrainConfig, TrainError, TrainHistory};

/// What every kind of stage gets to run with.
struct StageRun<'a> {
    stage: &'a Stage,
    inputs: &'a [&'a Done],
    data: &'a PreparedData,
    dir: &'a Path,
    progress: &'a Progress,
    device: &'a ComputeDevice,
    train_device: TrainDevice,
    kind: String,
    from: Option<String>,
}

impl StageRun<'_> {
    /// The product of the stage's main input (`from`, or `teacher` for distillation).
    fn input(&self) -> Option<&Done> {
        self.inputs.first().copied()
    }

    /// The f32 size of the model the chain of stages started from, which compression ratios compare with.
    fn reference_f32_bytes(&self) -> usize {
        self.input().map_or(0, |d| d.metrics.reference_f32_bytes)
    }

    /// [`f32_metrics`] of `model`, as this stage's.
    fn f32_metrics(&self, model: &Sequential, reference_f32_bytes: usize) -> StageMetrics {
        f32_metrics(
            &self.stage.name,
            &self.kind,
            self.from.clone(),
            model,
            self.data,
            reference_f32_bytes,
        )
    }
}

/// A stage's product, the files it wrote (relative to its directory) and its metrics.
type Produced = (Artifact, Vec<String>, StageMetrics);

pub(super) fn write_json<T: Serialize>(
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

pub(super) type StageProduct = ((Artifact, Vec<String>), StageMetrics);

/// `history.json`: the best epoch, whether training stopped early, and every epoch's losses and accuracies.
fn write_history(dir: &Path, history: &TrainHistory) -> Result<(), PipelineError> {
    write_json(
        &dir.join("history.json"),
        "history.json",
        &serde_json::json!({
            "best_epoch": history.best_epoch,
            "stopped_early": history.stopped_early,
            "epochs": history.epochs,
        }),
    )
}

/// Runs `stage` into `dir`, from the products of the stages it reads (`inputs`, in the order of
/// [`StageSpec::inputs`]).
pub(super) fn run_stage(
    stage: &Stage,
    inputs: &[&Done],
    data: &PreparedData,
    dir: &Path,
    progress: &Progress,
    device: &ComputeDevice,
    log: &mut dyn FnMut(&str),
) -> Result<StageProduct, PipelineError> {
    let started = Instant::now();
    // A stage that runs loses its record first, so an interrupted run never looks finished.
    match std::fs::remove_file(dir.join("stage.json")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    let run = StageRun {
        stage,
        inputs,
        data,
        dir,
        progress,
        device,
        train_device: TrainDevice::from(device),
        kind: stage.spec.kind().to_string(),
        from: stage.spec.from().map(str::to_string),
    };
    let (artifact, outputs, mut metrics) = match &stage.spec {
        StageSpec::Train { arch, config, .. } => train(&run, arch, config)?,
        StageSpec::Prune { plan, .. } => prune(&run, plan)?,
        StageSpec::Distill {
            student,
            distill: settings,
            config,
            ..
        } => distill(&run, student, settings, config, log)?,
        StageSpec::Quantize {
            raw,
            calibration,
            config,
            options,
            latency_calls,
        } => quantize(
            &run,
            raw,
            calibration.as_ref(),
            config,
            options,
            latency_calls,
            log,
        )?,
        StageSpec::Export {
            raw,
            format,
            file,
            vector_input,
        } => export(&run, raw, format, file, vector_input)?,
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

/// A `train` stage: a fresh model trained on the training split.
fn train(
    run: &StageRun<'_>,
    arch: &Architecture,
    config: &TrainConfig,
) -> Result<Produced, PipelineError> {
    let StageRun {
        stage,
        data,
        dir,
        progress,
        train_device,
        ..
    } = run;
    let bar = progress.bar(config.epochs, &format!("{}: training", stage.name));
    let (model, history) =
        steps::train_model_on(train_device, arch.clone(), data, config, &mut |e| {
            bar.inc(1);
            bar.set_message(format!("val acc {:.2} %", 100.0 * e.val_accuracy));
        })?;
    bar.finish_and_clear();
    steps::save_checkpoint(&dir.join("checkpoint"), &model, &data.preprocess())?;
    write_history(dir, &history)?;
    let reference = model.num_parameters() * 4;
    let m = run.f32_metrics(&model, reference);
    Ok((
        Artifact::Model(Box::new(model)),
        model_outputs("history.json"),
        m,
    ))
}

/// A `prune` stage: the input model pruned by `plan`, with its fine-tunes.
fn prune(run: &StageRun<'_>, plan: &PruningPlan) -> Result<Produced, PipelineError> {
    let StageRun {
        stage,
        data,
        dir,
        progress,
        ..
    } = run;
    let input = run.input();
    let mut model = input_model(input)?.clone();
    let reference = run.reference_f32_bytes();
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
    let m = run.f32_metrics(&model, reference);
    Ok((
        Artifact::Model(Box::new(model)),
        model_outputs("steps.json"),
        m,
    ))
}

/// A `distill` stage: a student trained on the input model's soft targets, resumable after an interruption.
fn distill(
    run: &StageRun<'_>,
    student: &Option<(Architecture, String)>,
    distill: &DistillConfig,
    config: &TrainConfig,
    log: &mut dyn FnMut(&str),
) -> Result<Produced, PipelineError> {
    let StageRun {
        stage,
        data,
        dir,
        progress,
        train_device,
        ..
    } = run;
    let input = run.input();
    let teacher = input_model(input)?;
    let mut model = match student {
        Some((arch, _)) => {
            steps::check_arch_fits(arch, data)?;
            Sequential::new(arch.clone(), config.seed)?
        }
        None => input_model(run.inputs.get(1).copied())?.clone(),
    };
    let reference = run.reference_f32_bytes();
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
            train_device,
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
    write_history(dir, &history)?;
    crate::fsutil::remove_dir_atomic(&state_dir)?;
    let m = run.f32_metrics(&model, reference);
    Ok((
        Artifact::Model(Box::new(model)),
        model_outputs("history.json"),
        m,
    ))
}

/// A `quantize` stage: the input model's blob, its sidecar, its evaluation and its latency.
fn quantize(
    run: &StageRun<'_>,
    raw: &QuantizeStage,
    calibration: Option<&CalibrationFile>,
    config: &QuantConfig,
    options: &EncodeOptions,
    latency_calls: &usize,
    log: &mut dyn FnMut(&str),
) -> Result<Produced, PipelineError> {
    let StageRun {
        stage,
        data,
        dir,
        progress,
        device,
        ..
    } = run;
    let input = run.input();
    let model = input_model(input)?;
    let reference = run.reference_f32_bytes();
    let mut calibration_rows = data.splits.train.y.len();
    let q = if raw.dynamic == Some(true) {
        steps::quantize_model_dynamic(model, data)?
    } else if let Some(file) = calibration {
        // The model's own features from a file, standardized like the training data, instead of the
        // training split (the same path as `tickq quantize --calibration`).
        let record = steps::InputRecord::Trades(Box::new(data.preprocess()));
        let source = steps::InputSource {
            path: Some(&file.path),
            tensor: file.tensor.as_deref(),
            labels: None,
            rows: file.rows,
        };
        let set = steps::read_vectors(
            &file.path,
            &source,
            &steps::input_shape(&model.arch, &record),
        )?;
        for note in &set.notes {
            log(&format!("{}: {note}", stage.name));
        }
        calibration_rows = set.x.nrows();
        log(&format!(
            "{}: calibrating on {} rows of {}",
            stage.name,
            config.calibration_samples.min(calibration_rows),
            file.path.display()
        ));
        steps::quantize_with_calibration(model, &record, set.x.view(), config, options)?
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
        steps::quant_summary(config, config.calibration_samples.min(calibration_rows))
    };
    let ranges: Vec<RangeRow> = q.ranges.iter().map(RangeRow::from).collect();
    QuantSidecar {
        quantization: summary.clone(),
        ranges: ranges.clone(),
        dataset: Some(data.dataset.clone()),
        split: Some(data.split),
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
    let stats = PruningStatistics::of_blob(&q.blob).map_err(|source| PipelineError::BlobStats {
        path: blob_path.clone(),
        source: Box::new(source),
    })?;
    let m = StageMetrics {
        stage: stage.name.clone(),
        kind: run.kind.clone(),
        from: run.from.clone(),
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
    Ok((Artifact::Blob(q.blob), outputs, m))
}

/// An `export` stage: the input blob as a device file, with test vectors.
fn export(
    run: &StageRun<'_>,
    raw: &ExportStage,
    format: &Format,
    file: &str,
    vector_input: &Option<VectorInput>,
) -> Result<Produced, PipelineError> {
    let StageRun {
        stage, data, dir, ..
    } = run;
    let input = run.input();
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
    let vectors = match raw.settings.vectors()? {
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
        kind: run.kind.clone(),
        from: run.from.clone(),
        ..source_metrics.clone()
    };
    Ok((Artifact::Files, outputs, m))
}
