//! Options shared by several subcommands, and the helpers that load what they name.

use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use tickq_host::data::{self, DatasetConfig};
use tickq_host::device::DeviceChoice;
use tickq_host::gpu_train::TrainDevice;
use tickq_host::limits::{self, Count, RangeError, Real};
use tickq_host::model::OptimizerConfig;
use tickq_host::quant::QuantConfig;
use tickq_host::quant::config::RawQuantConfig;
use tickq_host::steps::{self, EncodeOptions, PipelineError, Target, WeightFormat};
use tickq_host::train::{ClassWeights, TrainConfig};

use crate::progress;

/// Data and dataset options shared by the commands that build samples.
#[derive(Args, Debug, Clone)]
pub(crate) struct DataArgs {
    /// Trade CSV (timestamp, price, size[, side]); defaults to the bundled ES ticks.
    #[arg(long, value_name = "CSV")]
    pub(crate) data: Option<PathBuf>,
}

impl DataArgs {
    pub(crate) fn path(&self) -> PathBuf {
        self.data.clone().unwrap_or_else(data::default_data_path)
    }
}

/// A clap value parser for a whole number in `range`: `-5`, `0` or `1e12` outside it get an error that names the
/// range, rather than clap's "unexpected argument".
pub(crate) fn whole(
    range: Count,
) -> impl Fn(&str) -> Result<usize, RangeError> + Clone + Send + Sync + 'static {
    move |text| range.parse_usize(text)
}

/// [`whole`] for a `u64`.
pub(crate) fn whole_u64(
    range: Count,
) -> impl Fn(&str) -> Result<u64, RangeError> + Clone + Send + Sync + 'static {
    move |text| range.parse(text)
}

/// A clap value parser for a real number in `range`, as an `f32`.
pub(crate) fn real(
    range: Real,
) -> impl Fn(&str) -> Result<f32, RangeError> + Clone + Send + Sync + 'static {
    move |text| range.parse_f32(text)
}

/// A clap value parser for a real number in `range`, as an `f64`.
pub(crate) fn real_f64(
    range: Real,
) -> impl Fn(&str) -> Result<f64, RangeError> + Clone + Send + Sync + 'static {
    move |text| range.parse(text)
}

/// The help of a numeric option: what it is, then its valid range, written from the same constant the value
/// parser checks.
pub(crate) fn ranged(what: &str, range: impl std::fmt::Display) -> String {
    format!("{what}. Valid: {range}")
}

/// Labelling and windowing options for `train` and `demo`.
#[derive(Args, Debug, Clone)]
pub(crate) struct DatasetArgs {
    #[arg(long, value_name = "TRADES", allow_negative_numbers = true, value_parser = whole(limits::HORIZON),
          help = ranged("Label horizon: the price move over the next H trades is classified [default: 100]", limits::HORIZON))]
    pub(crate) horizon: Option<usize>,
    #[arg(long, value_name = "PRICE", allow_negative_numbers = true, value_parser = real_f64(limits::DEAD_BAND),
          help = ranged("Dead band in price units: moves within +-band are labelled flat [default: 0.125]", limits::DEAD_BAND))]
    pub(crate) dead_band: Option<f64>,
    #[arg(long, value_name = "T", allow_negative_numbers = true, value_parser = whole(limits::TIME_STEPS),
          help = ranged("Window length: how many past ticks form one sample (1 = current tick only) [default: 1]", limits::TIME_STEPS))]
    pub(crate) time_steps: Option<usize>,
}

impl DatasetArgs {
    pub(crate) fn config(&self) -> DatasetConfig {
        let mut cfg = DatasetConfig::default();
        if let Some(h) = self.horizon {
            cfg.labels.horizon = h;
        }
        if let Some(b) = self.dead_band {
            cfg.labels.dead_band = b;
        }
        if let Some(t) = self.time_steps {
            cfg.time_steps = t;
        }
        cfg
    }
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub(crate) enum OptimizerArg {
    Adam,
    Sgd,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub(crate) enum ClassWeightArg {
    None,
    Balanced,
}

/// `--batch-size`, shared by the commands that train or fine-tune.
#[derive(Args, Debug, Clone)]
pub(crate) struct BatchSizeArg {
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole(limits::BATCH_SIZE),
          help = ranged("Mini-batch size (training, or fine-tuning after pruning) [default: 256]", limits::BATCH_SIZE))]
    pub(crate) batch_size: Option<usize>,
}

/// `--lr`, shared by the commands that train or fine-tune.
#[derive(Args, Debug, Clone)]
pub(crate) struct LrArg {
    #[arg(long, value_name = "LR", allow_negative_numbers = true, value_parser = real(limits::LR),
          help = ranged("Learning rate [default: 1e-3 for Adam (and pruning's fine-tuning), 1e-2 for SGD]", limits::LR))]
    pub(crate) lr: Option<f32>,
}

/// Training options.
#[derive(Args, Debug, Clone)]
pub(crate) struct TrainOpts {
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole(limits::EPOCHS),
          help = ranged("Maximum number of epochs [default: 20]", limits::EPOCHS))]
    pub(crate) epochs: Option<usize>,
    #[command(flatten)]
    pub(crate) batch_size: BatchSizeArg,
    /// Optimizer.
    #[arg(long, value_enum)]
    pub(crate) optimizer: Option<OptimizerArg>,
    #[command(flatten)]
    pub(crate) lr: LrArg,
    #[arg(long, allow_negative_numbers = true, value_parser = real(limits::MOMENTUM),
          help = ranged("SGD momentum, with --optimizer sgd [default: 0.9]", limits::MOMENTUM))]
    pub(crate) momentum: Option<f32>,
    #[arg(long, value_name = "EPOCHS", allow_negative_numbers = true, value_parser = whole(limits::PATIENCE),
          help = ranged("Early stopping: epochs without a better validation loss before stopping (0: never) [default: 4]", limits::PATIENCE))]
    pub(crate) patience: Option<usize>,
    #[arg(long, allow_negative_numbers = true, value_parser = whole_u64(limits::SEED),
          help = ranged("Seed for initialization and shuffling; the same seed gives identical weights [default: 7]", limits::SEED))]
    pub(crate) seed: Option<u64>,
    /// Class weights in the cross-entropy loss.
    #[arg(long, value_enum)]
    pub(crate) class_weights: Option<ClassWeightArg>,
}

impl TrainOpts {
    pub(crate) fn config(&self, base: TrainConfig) -> Result<TrainConfig, PipelineError> {
        let mut cfg = base;
        if let Some(e) = self.epochs {
            cfg.epochs = e;
        }
        if let Some(b) = self.batch_size.batch_size {
            cfg.batch_size = b;
        }
        if let Some(p) = self.patience {
            cfg.patience = p;
        }
        if let Some(s) = self.seed {
            cfg.seed = s;
        }
        if self.momentum.is_some() && !matches!(self.optimizer, Some(OptimizerArg::Sgd)) {
            return Err(PipelineError::OptionRequires {
                option: "--momentum",
                requires: "--optimizer sgd",
            });
        }
        let lr = self.lr.lr;
        match self.optimizer {
            Some(OptimizerArg::Sgd) => {
                cfg.optimizer =
                    OptimizerConfig::sgd(lr.unwrap_or(1e-2), self.momentum.unwrap_or(0.9));
            }
            Some(OptimizerArg::Adam) => cfg.optimizer = OptimizerConfig::adam(lr.unwrap_or(1e-3)),
            None => {
                if let Some(new_lr) = lr {
                    match &mut cfg.optimizer {
                        OptimizerConfig::Adam { lr, .. } | OptimizerConfig::Sgd { lr, .. } => {
                            *lr = new_lr
                        }
                    }
                }
            }
        }
        match self.class_weights {
            Some(ClassWeightArg::None) => cfg.class_weights = ClassWeights::None,
            Some(ClassWeightArg::Balanced) => cfg.class_weights = ClassWeights::Balanced,
            None => {}
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Quantization options (override the config file).
#[derive(Args, Debug, Clone)]
pub(crate) struct QuantOpts {
    /// Quantization config file (TOML: backend, dtype, reduce_range, observer, percentile,
    /// averaging_constant, calibration_samples).
    #[arg(long, value_name = "TOML")]
    pub(crate) quant_config: Option<PathBuf>,
    /// Backend: x86 (alias fbgemm), arm (alias qnnpack) or fpga (power-of-two scales).
    #[arg(long)]
    pub(crate) backend: Option<String>,
    /// Activation dtype: qint8 or quint8 (the same 256-level grid).
    #[arg(long)]
    pub(crate) dtype: Option<String>,
    /// 7-bit activations (-64..=63), as fbgemm's reduce_range.
    #[arg(long)]
    pub(crate) reduce_range: bool,
    /// Activation observer: minmax, moving_average_minmax, percentile, mse or kl.
    #[arg(long)]
    pub(crate) observer: Option<String>,
    #[arg(long, allow_negative_numbers = true, value_parser = real_f64(limits::PERCENTILE),
          help = ranged("Percentile for the percentile observer [default: 99.99]", limits::PERCENTILE))]
    pub(crate) percentile: Option<f64>,
    #[arg(long, allow_negative_numbers = true, value_parser = real_f64(limits::AVERAGING_CONSTANT),
          help = ranged("Averaging constant of the moving-average observer [default: 0.01]", limits::AVERAGING_CONSTANT))]
    pub(crate) averaging_constant: Option<f64>,
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole(limits::CALIBRATION_SAMPLES),
          help = ranged("Training samples used for calibration (at most the training split is used) [default: 4096]", limits::CALIBRATION_SAMPLES))]
    pub(crate) calibration_samples: Option<usize>,
    /// Weight encoding in the blob: auto (per layer, the fastest estimate on --target among
    /// formats smaller than its dense layout), dense (the target's dense layout: dense-dot on
    /// x86-64 and aarch64, dense-dsp for Cortex-M4 Dense layers, blocked otherwise), smallest
    /// (per layer, the fewest bytes), blocked (16-channel blocks of input pairs, format 0),
    /// dense-dot (16-channel blocks of 4-input groups, for vpdpbusd / vpmaddwd / sdot),
    /// dense-dsp (Dense layers for the Cortex-M4's SMLAD), sparse (by output channel),
    /// columns (Dense only, by input: skips inputs at their zero point, e.g. ReLU zeros),
    /// packed (columns with bit-packed entries: smallest, slower) or nm (N:4 semi-structured).
    #[arg(
        long,
        default_value = "auto",
        value_name = "auto|dense|smallest|blocked|dense-dot|dense-dsp|sparse|columns|packed|nm"
    )]
    pub(crate) weight_format: WeightFormat,
    /// The machine the blob is for: its dense layout, and what --weight-format auto counts as
    /// fast. Default: this machine (x86-64-v4 with AVX-512 VNNI, x86-64-v3 with AVX2, else
    /// x86-64; aarch64 on aarch64).
    #[arg(
        long,
        value_name = "x86-64-v4|x86-64-v3|x86-64|aarch64|cortex-m4|cortex-m0|riscv32"
    )]
    pub(crate) target: Option<Target>,
}

impl QuantOpts {
    pub(crate) fn config(&self) -> Result<QuantConfig, PipelineError> {
        let file = match &self.quant_config {
            Some(p) => RawQuantConfig::load(p)?,
            None => RawQuantConfig::default(),
        };
        let cli = RawQuantConfig {
            backend: self.backend.clone(),
            dtype: self.dtype.clone(),
            reduce_range: self.reduce_range.then_some(true),
            observer: self.observer.clone(),
            percentile: self.percentile,
            averaging_constant: self.averaging_constant,
            calibration_samples: self.calibration_samples,
        };
        Ok(file.overridden_by(cli).resolve()?)
    }

    pub(crate) fn encode_options(&self) -> EncodeOptions {
        EncodeOptions {
            weight_format: self.weight_format,
            target: self.target.unwrap_or_else(Target::native),
        }
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
    let (model, pre) = steps::load_checkpoint(checkpoint)?;
    let path = data.path();
    progress(&format!("reading {}", path.display()));
    let (prepared, same) = steps::prepare_data_for(&pre, &path)?;
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
