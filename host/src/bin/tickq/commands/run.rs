//! `tickq run`: a checkpoint (f32) or a blob (int8 through tickq-core) on input vectors from a file, with the
//! accuracy against labels and the agreement and error against reference logits.

use clap::Args;
use std::path::PathBuf;
use tickq_host::data::vectors::{self, InputLayout, InputShape};
use tickq_host::paths::check_output_file;
use tickq_host::steps::{self, PipelineError};

use crate::args::*;
use crate::{out, progress};

#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// A checkpoint directory (its f32 logits) or a blob file (its int8 logits, dequantized scores and
    /// signals, computed by tickq-core).
    pub(crate) model: PathBuf,
    #[command(flatten)]
    pub(crate) inputs: InputsArgs,
    /// Reference logits to compare with, [N, classes] in any of the input formats: prints the agreement of
    /// the argmax and the max and mean absolute error.
    #[arg(long, value_name = "FILE")]
    pub(crate) reference: Option<PathBuf>,
    /// The tensor of a safetensors --reference file [default: its only tensor, or `logits`].
    #[arg(long, value_name = "NAME", requires = "reference")]
    pub(crate) reference_tensor: Option<String>,
    /// Write the predictions: .npy ([N, classes] float32 logits or scores) or CSV (the signal, then the
    /// logits, or a blob's int8 logits and scores, one column per class).
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// A blob's input layout, which the blob records [default: the blob's own]; a checkpoint's comes from
    /// its preprocess.json.
    #[arg(long, value_name = "LAYOUT")]
    pub(crate) layout: Option<InputLayout>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn run(a: RunArgs) -> Result<(), PipelineError> {
    if let Some(path) = &a.out {
        check_output_file(path, "the predictions")?;
    }
    let Some(inputs) = a.inputs.inputs.clone() else {
        return Err(PipelineError::NeedsInputs {
            what: "tickq run".into(),
            flag: "--inputs FILE",
        });
    };
    let source = a.inputs.source();
    let (predictions, summary_name, labels_names, classes, set) = if a.model.is_dir() {
        let (model, record) = steps::load_checkpoint_inputs(&a.model)?;
        let mut shape = steps::input_shape(&model.arch, &record);
        if let Some(layout) = a.layout {
            shape.layout = layout;
        }
        let set = steps::read_vectors(&inputs, &source, &shape)?;
        let p = steps::predict_float(&model, record.normalizer(), set.x.view());
        (
            p,
            "checkpoint (f32)",
            record.label_names().to_vec(),
            model.arch.classes,
            set,
        )
    } else {
        let bytes = read_blob(&a.model)?;
        let model = tickq_core::Model::load(&bytes).map_err(|source| PipelineError::Blob {
            path: a.model.clone(),
            source,
        })?;
        let (time_steps, features) = model.input_shape();
        let names: Vec<String> = model
            .metadata()
            .feature_names()
            .map(str::to_string)
            .collect();
        let layout = a.layout.unwrap_or_else(|| steps::blob_layout(&model));
        let shape = InputShape {
            time_steps,
            features,
            layout,
            names: &names,
            classes: model.classes(),
        };
        let set = steps::read_vectors(&inputs, &source, &shape)?;
        let p = steps::predict_blob(&model, &a.model, set.x.view())?;
        let labels: Vec<String> = model.metadata().label_names().map(str::to_string).collect();
        (
            p,
            "blob (int8 through tickq-core)",
            labels,
            model.classes(),
            set,
        )
    };
    for note in &set.notes {
        progress(note);
    }
    let reference = match &a.reference {
        Some(path) => Some((
            path.as_path(),
            vectors::read_reference(path, a.reference_tensor.as_deref(), classes)?,
        )),
        None => None,
    };
    let reference = match (&reference, source.rows) {
        (Some((path, r)), Some((start, end))) => {
            if end > r.nrows() {
                return Err(vectors::VectorError::Rows {
                    path: path.to_path_buf(),
                    found: r.nrows(),
                    expected: end,
                    what: "reference rows",
                }
                .into());
            }
            Some((*path, r.slice(ndarray::s![start..end, ..]).to_owned()))
        }
        (Some((path, r)), None) => Some((*path, r.clone())),
        (None, _) => None,
    };
    let labels_path = a.inputs.labels.as_deref().unwrap_or(&inputs);
    let summary = steps::summarize_run(
        summary_name,
        &labels_names,
        &predictions,
        set.labels.as_deref().map(|y| (labels_path, y)),
        reference.as_ref().map(|(p, r)| (*p, r.view())),
    )?;
    if let Some(path) = &a.out {
        steps::write_predictions(path, &predictions, &labels_names)?;
        progress(&format!("wrote {}", path.display()));
    }
    if a.json {
        out(
            &serde_json::to_string_pretty(&summary).map_err(|source| PipelineError::JsonWrite {
                what: "the run summary",
                source,
            })?,
        )
    } else {
        out(&summary.to_text())
    }
}
