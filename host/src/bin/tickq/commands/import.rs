//! `tickq import`: an ONNX model file, or PyTorch-style safetensors plus an architecture file, as a checkpoint
//! fed tickq's trade features or vectors from files (docs/BYO_MODEL.md, docs/ONNX.md).

use clap::Args;
use std::path::PathBuf;
use tickq_host::data::DatasetConfig;
use tickq_host::data::vectors::{self, InputLayout};
use tickq_host::paths::check_output_dir;
use tickq_host::steps::{self, InputRecord, PipelineError};

use crate::args::*;
use crate::{out, progress};

#[derive(Args, Debug)]
pub(crate) struct ImportArgs {
    /// An ONNX model file (`.onnx`, as `torch.onnx.export` writes it): the layers, shapes and weights come
    /// from its graph, and its input's layout from the input's shape ([N, F] a vector, [N, C, T]
    /// channels-first). Instead of --weights and --arch.
    #[arg(value_name = "MODEL.onnx", conflicts_with_all = ["weights", "arch"])]
    pub(crate) model: Option<PathBuf>,
    /// safetensors file with PyTorch state_dict names (fc1.weight as [out, in], conv1.weight as [out, in, k]).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "model",
        requires = "arch"
    )]
    pub(crate) weights: Option<PathBuf>,
    /// Architecture file describing the same network.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "model",
        requires = "weights"
    )]
    pub(crate) arch: Option<PathBuf>,
    /// Checkpoint directory to write.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// preprocess.json describing the standardization the model was trained with;
    /// without it, the data settings below (default: the defaults) are fitted on --data's training split.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["layout", "input_names", "input_names_from", "label_names"])]
    pub(crate) preprocess: Option<PathBuf>,
    /// Import a model fed vectors from files (its own features, not tickq's trade features), with this input
    /// layout: time-major ([T, F], tickq's rows) or channels-first ([C, T], as PyTorch's Conv1d takes it).
    /// Given, or with --input-names, --input-names-from or --label-names, no data is read, the
    /// standardization is the identity, and later commands read their inputs from files (--calibration,
    /// --inputs).
    #[arg(long, value_name = "LAYOUT")]
    pub(crate) layout: Option<InputLayout>,
    /// Names of the model's inputs (features per time step, or channels), comma-separated [default: x0,x1,...].
    #[arg(
        long,
        value_name = "NAMES",
        value_delimiter = ',',
        conflicts_with = "input_names_from"
    )]
    pub(crate) input_names: Option<Vec<String>>,
    /// Names of the model's inputs from a CSV or Parquet file's header (without its `label` column).
    #[arg(long, value_name = "FILE")]
    pub(crate) input_names_from: Option<PathBuf>,
    /// Names of the classes, comma-separated [default: class0,class1,...].
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub(crate) label_names: Option<Vec<String>>,
    #[command(flatten)]
    pub(crate) data: DataArgs,
    /// The data settings without --preprocess (the window length defaults to the architecture's).
    #[command(flatten)]
    pub(crate) dataset: tickq_host::options::DataOptions,
}

impl ImportArgs {
    fn is_vectors(&self) -> bool {
        self.layout.is_some()
            || self.input_names.is_some()
            || self.input_names_from.is_some()
            || self.label_names.is_some()
    }
}

pub(crate) fn run(a: ImportArgs) -> Result<(), PipelineError> {
    check_output_dir(&a.out, "the checkpoint")?;
    let (model, graph_layout) = if let Some(file) = &a.model {
        let import = tickq_host::onnx::import_onnx(file)?;
        progress(&format!(
            "{}: ONNX opset {}, input `{}` {}, {} layers",
            file.display(),
            import.opset,
            import.input.name,
            import.input.layout,
            import.model.arch.layers.len()
        ));
        let layout = import.input.layout.layout();
        (import.model, Some(layout))
    } else {
        let (Some(weights), Some(arch)) = (&a.weights, &a.arch) else {
            return Err(PipelineError::NoImportModel);
        };
        (
            tickq_host::checkpoint::import_safetensors(weights, arch)?,
            None,
        )
    };
    // An ONNX graph says how its input is laid out, so without trade settings (--preprocess, --data) its
    // checkpoint is fed vectors from files in that layout.
    let onnx_vectors = graph_layout.is_some() && a.preprocess.is_none() && a.data.data.is_none();
    let record = if a.is_vectors() || onnx_vectors {
        let names = match (&a.input_names, &a.input_names_from) {
            (Some(n), _) => Some((n.clone(), "--input-names".to_string())),
            (None, Some(file)) => Some((
                vectors::read_header_names(file)?,
                format!("the header of {}", file.display()),
            )),
            (None, None) => None,
        };
        let labels = a
            .label_names
            .clone()
            .map(|n| (n, "--label-names".to_string()));
        let layout = a.layout.or(graph_layout).unwrap_or_default();
        let record = steps::vector_inputs_for(&model.arch, names, layout, labels)?;
        progress(&format!(
            "inputs: {} named inputs, {} {}, identity standardization; no data read",
            record.input_names.len(),
            layout,
            layout.shape_text(model.arch.input.time_steps, model.arch.input.features)
        ));
        InputRecord::Vectors(record)
    } else {
        InputRecord::Trades(Box::new(match &a.preprocess {
            Some(p) => steps::Preprocess::read(p, &model.arch)?,
            None => {
                let dataset = a.dataset.apply(DatasetConfig {
                    time_steps: model.arch.input.time_steps,
                    ..DatasetConfig::default()
                });
                let path = a.data.path()?;
                progress(&format!(
                    "no --preprocess given: fitting standardization on the training split of {}",
                    path.display()
                ));
                let data = steps::prepare_data(&path, &a.data.dataset(dataset), None)?;
                crate::args::print_read_notes(&data);
                steps::check_arch_fits(&model.arch, &data)?;
                data.preprocess()
            }
        }))
    };
    steps::save_checkpoint_inputs(&a.out, &model, &record)?;
    out(&format!(
        "imported {} parameters into {}",
        model.num_parameters(),
        a.out.display()
    ))
}
