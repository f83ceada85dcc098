//! `tickq demo`: the bundled demo pipeline, plus the files the demo has always written at the top of its output.

use std::path::{Path, PathBuf};

use super::{
    CHECKPOINT_FILES, DEMO_CONFIG, PipelineConfig, PipelineRun, RunOptions, StagesError,
    run_pipeline,
};
use crate::fsutil::{replace_dir, write_atomic};

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

/// `tickq demo`: runs [`DEMO_CONFIG`] into `out` (on `csv`, or the bundled ticks, read with `read` over the
/// config's `[data.read]`), then copies the trained
/// model's checkpoint to `out/checkpoint/`, its blob to `out/model.blob` and that blob's report to
/// `out/report.{md,json}`, the files the demo has always written.
///
/// # Errors
///
/// As [`run_pipeline`], and [`StagesError::Output`] when a copy fails.
pub fn run_demo(
    csv: Option<&Path>,
    read: &crate::options::ReadOptions,
    opts: &RunOptions,
    log: &mut dyn FnMut(&str),
) -> Result<DemoOutputs, StagesError> {
    let mut cfg = PipelineConfig::parse(
        DEMO_CONFIG,
        "host/pipelines/demo.toml (bundled)",
        Path::new("."),
    )?;
    if let Some(csv) = csv {
        cfg.csv = Some(csv.to_path_buf());
    }
    if !read.is_default() {
        let base = cfg.data.read.take().unwrap_or_default();
        cfg.data.read = Some(base.overridden_by(read));
    }
    let run = run_pipeline(&cfg, opts, log)?;
    let out = &opts.out;
    let copy = |from: PathBuf, to: PathBuf| -> Result<PathBuf, StagesError> {
        let output = |source: std::io::Error| StagesError::Output {
            path: to.clone(),
            source,
        };
        let bytes = std::fs::read(&from).map_err(output)?;
        write_atomic(&to, &bytes).map_err(output)?;
        Ok(to)
    };
    // The checkpoint is copied as one unit, like every checkpoint tickq writes.
    let from = out.join("train").join("checkpoint");
    let to = out.join("checkpoint");
    let output = |path: &Path| {
        let path = path.to_path_buf();
        move |source: std::io::Error| StagesError::Output { path, source }
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
