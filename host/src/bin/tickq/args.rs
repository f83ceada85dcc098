//! Options shared by several subcommands, and the helpers that load what they name.

use clap::Args;
use std::path::{Path, PathBuf};
use tickq_host::data;
use tickq_host::device::DeviceChoice;
use tickq_host::gpu_train::TrainDevice;
use tickq_host::limits;
use tickq_host::options::{EncodeChoice, QuantOptions, ReadOptions};
use tickq_host::quant::{QuantConfig, QuantError};
use tickq_host::steps::{self, EncodeOptions, PipelineError};

use crate::progress;

/// Data and dataset options shared by the commands that build samples.
#[derive(Args, Debug, Clone)]
pub(crate) struct DataArgs {
    /// Trade file, CSV or Parquet (time, price, size[, side]); defaults to the bundled ES ticks.
    #[arg(long, value_name = "FILE")]
    pub(crate) data: Option<PathBuf>,
    /// How the file is read; over a checkpoint's own read settings, the ones given here win.
    #[command(flatten)]
    pub(crate) read: ReadOptions,
}

impl DataArgs {
    /// The file `--data` names, or the bundled ES ticks without it.
    pub(crate) fn path(&self) -> Result<PathBuf, PipelineError> {
        data_path(self.data.as_deref())
    }

    /// `dataset` read with these read options over its own.
    pub(crate) fn dataset(&self, mut dataset: data::DatasetConfig) -> data::DatasetConfig {
        dataset.read = dataset.read.overridden_by(&self.read);
        dataset
    }
}

/// The trade file `given` (a `--data` option) after checking that it exists, or without one the bundled ES ticks
/// ([`data::default_data_path`]: embedded in the binary, so found wherever it is installed).
pub(crate) fn data_path(given: Option<&Path>) -> Result<PathBuf, PipelineError> {
    match given {
        Some(path) if !path.exists() => Err(data::DataError::MissingFile {
            path: path.to_path_buf(),
        }
        .into()),
        Some(path) => Ok(path.to_path_buf()),
        None => Ok(data::default_data_path()?),
    }
}

/// Prints the reader's notes on the data (a reversed newest-first file, repeated rows).
pub(crate) fn print_read_notes(data: &steps::PreparedData) {
    for note in data.read_notes.messages(&data.source) {
        progress(&note);
    }
    for note in &data.input_notes {
        progress(note);
    }
}

pub(crate) use tickq_host::options::cli::{ranged, ranged_default, real, whole};

/// Static-quantization options: a config file, overridden field by field by the command line, and the blob's
/// weight format and target.
#[derive(Args, Debug, Clone)]
pub(crate) struct QuantArgs {
    /// Quantization config file (TOML with the fields of the options below: backend, dtype, reduce_range,
    /// observer, percentile, averaging_constant, calibration_samples); options given here override it.
    #[arg(long, value_name = "TOML")]
    pub(crate) quant_config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) quant: QuantOptions,
    #[command(flatten)]
    pub(crate) encode: EncodeChoice,
}

impl QuantArgs {
    pub(crate) fn config(&self) -> Result<QuantConfig, PipelineError> {
        let file = match &self.quant_config {
            Some(p) => QuantOptions::load(p)?,
            None => QuantOptions::default(),
        };
        let config = file
            .overridden_by(self.quant.clone())
            .resolve()
            .map_err(|source| QuantError::Setting {
                file: None,
                source: Box::new(source),
            })?;
        Ok(config)
    }

    pub(crate) fn encode_options(&self) -> EncodeOptions {
        self.encode.options()
    }
}

/// `--device` of the commands that train.
#[derive(Args, Debug)]
pub(crate) struct TrainDeviceArg {
    /// Where training runs: auto (a hardware GPU when wgpu finds one and the GPU trainer can run the model,
    /// else the CPU), cpu, or gpu (any adapter, software Vulkan too; an error without one). One stderr line says
    /// which. GPU training follows the same seeded order from the same initial weights and agrees with the
    /// CPU within rounding, not bit for bit; use cpu for runs that must be bit-identical on every machine.
    #[arg(long = "device", value_enum, default_value = "auto")]
    pub(crate) device: DeviceChoice,
}

impl TrainDeviceArg {
    pub(crate) fn resolve(&self) -> Result<TrainDevice, PipelineError> {
        Ok(TrainDevice::resolve(self.device)?)
    }
}

pub(crate) type Loaded = (
    tickq_host::model::Sequential,
    steps::PreparedData,
    steps::Preprocess,
);

pub(crate) fn load_with_data(checkpoint: &Path, data: &DataArgs) -> Result<Loaded, PipelineError> {
    let (model, mut pre) = steps::load_checkpoint(checkpoint)?;
    pre.dataset = data.dataset(pre.dataset);
    let path = data.path()?;
    progress(&format!("reading {}", path.display()));
    let (prepared, same) = steps::prepare_data_for(&pre, &path)?;
    print_read_notes(&prepared);
    if !same {
        progress(&format!(
            "warning: {} is not the file the checkpoint was trained on (sha256 differs)",
            path.display()
        ));
    }
    steps::check_arch_fits(&model.arch, &prepared)?;
    Ok((model, prepared, pre))
}

/// Reads a blob file with [`limits::read_blob_file`], so a device or a huge file is not read into memory.
pub(crate) fn read_blob(path: &Path) -> Result<Vec<u8>, PipelineError> {
    limits::read_blob_file(path).map_err(|e| {
        PipelineError::Io(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", path.display()),
        ))
    })
}

/// `--backend` of the commands that run a blob.
#[derive(Args, Debug)]
pub(crate) struct BackendArg {
    /// The kernel backend to run: generic, sse2, avx2, avx512-vnni (x86-64), neon,
    /// neon-dot (aarch64). Default: the fastest this machine has (what a device loading the
    /// blob picks).
    #[arg(long, value_name = "NAME")]
    pub(crate) backend: Option<tickq_core::Backend>,
}

impl BackendArg {
    /// Loads the blob `bytes` (read from `path`) and pins the backend when one was named.
    pub(crate) fn load<'b>(
        &self,
        bytes: &'b [u8],
        path: &Path,
    ) -> Result<tickq_core::Model<'b>, PipelineError> {
        let mut model = tickq_core::Model::load(bytes).map_err(|source| PipelineError::Blob {
            path: path.to_path_buf(),
            source,
        })?;
        if let Some(backend) = self.backend {
            model
                .set_backend(backend)
                .map_err(|source| PipelineError::Backend { backend, source })?;
        }
        Ok(model)
    }
}

/// Parses a row range `A..B` ([`limits::row_range`], which the pipeline config's `calibration_rows` uses too).
pub(crate) fn row_range(text: &str) -> Result<(usize, usize), String> {
    limits::row_range(text)
}

/// The help of a row range option.
pub(crate) fn rows_help(what: &str) -> String {
    format!(
        "{what}: rows START..END of the file (0-based, END excluded). Valid: {}",
        limits::VECTORS
    )
}

/// An inputs file and how to read it, for the commands that run a model on vectors from files.
#[derive(Args, Debug, Clone)]
pub(crate) struct InputsArgs {
    /// Input vectors: .npy, .safetensors, .csv or .parquet, as [N, inputs], [N, T, F] (time-major) or
    /// [N, C, T] (channels-first), the values the model (the blob) takes; a CSV or Parquet `label` column holds
    /// labels. See docs/BYO_MODEL.md.
    #[arg(long, value_name = "FILE")]
    pub(crate) inputs: Option<PathBuf>,
    /// The tensor of a safetensors --inputs file [default: its only tensor, or `inputs` or `x`].
    #[arg(long, value_name = "NAME")]
    pub(crate) tensor: Option<String>,
    /// Labels, one class per input row: a .npy or .safetensors array of N integers, or a CSV / Parquet `label`
    /// column.
    #[arg(long, value_name = "FILE")]
    pub(crate) labels: Option<PathBuf>,
    #[arg(long, value_name = "START..END", value_parser = row_range, help = rows_help("Use only these rows"))]
    pub(crate) rows: Option<(usize, usize)>,
}

impl InputsArgs {
    /// The source of the inputs, when a file was given.
    pub(crate) fn source(&self) -> steps::InputSource<'_> {
        steps::InputSource {
            path: self.inputs.as_deref(),
            tensor: self.tensor.as_deref(),
            labels: self.labels.as_deref(),
            rows: self.rows,
        }
    }
}
